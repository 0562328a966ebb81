// A Go crypto/tls + net/http server for the mtlsdiag lab (scripts/lab start
// builds it with `go build` into the lab's state directory).
// Usage: go-server PORT PKI_DIR
// ClientAuth RequireAndVerifyClientCert against client-root.pem; HTTP/1.1
// only (no h2 in ALPN), like the lab's other servers. The standard
// library's server log (handshake errors) and one line per request go to
// stderr.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"os"
)

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-server PORT PKI_DIR")
		os.Exit(2)
	}
	port, pki := os.Args[1], os.Args[2]
	logger := log.New(os.Stderr, "go ", log.LstdFlags|log.Lmicroseconds|log.LUTC)

	cert, err := tls.LoadX509KeyPair(pki+"/server.pem", pki+"/server.key")
	if err != nil {
		logger.Fatal(err)
	}
	roots, err := os.ReadFile(pki + "/client-root.pem")
	if err != nil {
		logger.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		logger.Fatal("no certificate in client-root.pem")
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := "-"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			peer = r.TLS.PeerCertificates[0].Subject.String()
		}
		logger.Printf("%s %q 200 %s peer=%q", r.RemoteAddr, r.Method+" "+r.URL.Path+" "+r.Proto,
			versionName(r.TLS.Version), peer)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok go")
	})

	srv := &http.Server{
		Addr:    "127.0.0.1:" + port,
		Handler: handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		},
		// a non-nil empty map: no HTTP/2
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     logger,
	}
	logger.Printf("listening on %s", srv.Addr)
	logger.Fatal(srv.ListenAndServeTLS("", ""))
}
