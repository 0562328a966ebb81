// A Node.js HTTPS server for the mtlsdiag lab (scripts/lab start).
// Usage: node node-server.js PORT MODE PKI_DIR
//   MODE required: requestCert, rejectUnauthorized: true (the TLS layer
//                  refuses a missing or unverifiable certificate)
//   MODE http401:  requestCert, rejectUnauthorized: false; the application
//                  answers 401 when req.socket.authorized is false, 200
//                  otherwise (the common pattern in Express apps)
// One log line per request and per failed handshake, on stdout.
'use strict';

const fs = require('fs');
const https = require('https');

const [port, mode, pki] = process.argv.slice(2);
if (!port || !['required', 'http401'].includes(mode) || !pki) {
	process.stderr.write('usage: node node-server.js PORT required|http401 PKI_DIR\n');
	process.exit(2);
}

function log(line) {
	process.stdout.write(`${new Date().toISOString()} node-${mode} ${line}\n`);
}

function peerName(sock) {
	const peer = sock.getPeerCertificate();
	return peer && peer.subject ? `CN=${peer.subject.CN}` : '-';
}

const server = https.createServer({
	key: fs.readFileSync(`${pki}/server.key`),
	cert: fs.readFileSync(`${pki}/server.pem`),
	ca: fs.readFileSync(`${pki}/client-root.pem`),
	requestCert: true,
	rejectUnauthorized: mode === 'required',
	minVersion: 'TLSv1.2',
}, (req, res) => {
	const sock = req.socket;
	const peer = peerName(sock);
	if (!sock.authorized) {
		const why = sock.authorizationError || 'no client certificate';
		log(`${sock.remotePort} "${req.method} ${req.url}" 401 ${sock.getProtocol()} peer=${peer} error=${why}`);
		res.writeHead(401, { 'Content-Type': 'text/plain' });
		res.end(`client certificate required: ${why}\n`);
		return;
	}
	log(`${sock.remotePort} "${req.method} ${req.url}" 200 ${sock.getProtocol()} peer=${peer}`);
	res.writeHead(200, { 'Content-Type': 'text/plain' });
	res.end(`ok node-${mode}\n`);
});

server.on('tlsClientError', (err, sock) => {
	log(`${sock.remotePort || '-'} TLS handshake failed: ${err.code || '-'} ${err.message}`);
});

server.listen(Number(port), '127.0.0.1', () => log(`listening on 127.0.0.1:${port}`));
