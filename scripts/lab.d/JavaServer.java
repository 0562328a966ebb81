// A Java HTTPS server for the mtlsdiag lab (scripts/lab start runs it as a
// single-file source program: java JavaServer.java PORT KEYSTORE TRUSTSTORE
// PASSWORD). com.sun.net.httpserver.HttpsServer, SSLParameters with
// needClientAuth: the JDK's TLS stack (SunJSSE) refuses a missing or
// unverifiable client certificate. The keystore (server.pem + server.key)
// and the truststore (client-root.pem) are PKCS#12 files scripts/lab makes
// with openssl and keytool. One log line per request on stdout, and one
// per exception the JDK's httpserver logs (a failed handshake: its
// SSLHandshakeException and cause, without the stack trace).
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsExchange;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import java.io.FileInputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.TrustManagerFactory;

public class JavaServer {
	/* held: a logger nobody references may be collected with its settings */
	static final Logger HTTPSERVER_LOG = Logger.getLogger("com.sun.net.httpserver");

	/* One line per exception the httpserver logs (FINER: failed handshakes). */
	static void logExceptions() {
		Handler h = new Handler() {
			@Override
			public void publish(LogRecord r) {
				Throwable t = r.getThrown();
				if (t == null)
					return;
				StringBuilder line = new StringBuilder(t.toString());
				for (Throwable c = t.getCause(); c != null && c != c.getCause(); c = c.getCause())
					line.append(" <- ").append(c.toString());
				System.out.printf("%s java %s%n", Instant.now(), line);
				System.out.flush();
			}

			@Override
			public void flush() {
				System.out.flush();
			}

			@Override
			public void close() {
			}
		};
		h.setLevel(Level.ALL);
		HTTPSERVER_LOG.setUseParentHandlers(false);
		HTTPSERVER_LOG.addHandler(h);
		HTTPSERVER_LOG.setLevel(Level.FINER);
	}

	static KeyStore load(String path, char[] password) throws Exception {
		KeyStore ks = KeyStore.getInstance("PKCS12");
		try (FileInputStream in = new FileInputStream(path)) {
			ks.load(in, password);
		}
		return ks;
	}

	public static void main(String[] args) throws Exception {
		if (args.length != 4) {
			System.err.println("usage: java JavaServer.java PORT KEYSTORE TRUSTSTORE PASSWORD");
			System.exit(2);
		}
		int port = Integer.parseInt(args[0]);
		logExceptions();
		char[] password = args[3].toCharArray();

		KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
		kmf.init(load(args[1], password), password);
		TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
		tmf.init(load(args[2], password));
		SSLContext ctx = SSLContext.getInstance("TLS");
		ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

		HttpsServer server = HttpsServer.create(new InetSocketAddress("127.0.0.1", port), 16);
		server.setHttpsConfigurator(new HttpsConfigurator(ctx) {
			@Override
			public void configure(HttpsParameters params) {
				SSLParameters p = getSSLContext().getDefaultSSLParameters();
				p.setProtocols(new String[] { "TLSv1.3", "TLSv1.2" });
				p.setNeedClientAuth(true);
				params.setSSLParameters(p);
			}
		});
		server.createContext("/", exchange -> {
			String peer = "-";
			try {
				Certificate[] chain = ((HttpsExchange) exchange).getSSLSession().getPeerCertificates();
				peer = ((X509Certificate) chain[0]).getSubjectX500Principal().getName();
			} catch (SSLPeerUnverifiedException e) {
				peer = "unverified";
			}
			System.out.printf("%s java %d \"%s %s\" 200 %s peer=\"%s\"%n", Instant.now(),
					exchange.getRemoteAddress().getPort(), exchange.getRequestMethod(),
					exchange.getRequestURI(), ((HttpsExchange) exchange).getSSLSession().getProtocol(), peer);
			System.out.flush();
			byte[] body = "ok java\n".getBytes(StandardCharsets.US_ASCII);
			exchange.getResponseHeaders().set("Content-Type", "text/plain");
			exchange.sendResponseHeaders(200, body.length);
			try (OutputStream out = exchange.getResponseBody()) {
				out.write(body);
			}
		});
		server.start();
		System.out.printf("%s java listening on 127.0.0.1:%d%n", Instant.now(), port);
		System.out.flush();
	}
}
