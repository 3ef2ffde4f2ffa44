package main

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/authsidecar/authsidecar/tokens"
)

// upstreamTLS is the TLS configuration shared by the upstream and the token
// endpoint: an extra CA and a client certificate, both optional. Nil when
// neither is set.
func (c Config) upstreamTLS(p *problems) *tls.Config {
	if c.UpstreamCAFile == "" && c.ClientCertFile == "" && c.ClientKeyFile == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.UpstreamCAFile != "" {
		cfg.RootCAs = caPool("UPSTREAM_CA_FILE", c.UpstreamCAFile, p)
	}
	switch {
	case c.ClientCertFile == "" && c.ClientKeyFile == "":
	case c.ClientCertFile == "" || c.ClientKeyFile == "":
		p.add("CLIENT_CERT_FILE", "%sCLIENT_CERT_FILE and %sCLIENT_KEY_FILE go together", envPrefix, envPrefix)
	default:
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			p.add("CLIENT_CERT_FILE", "load client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// caPool is the system's CA pool plus the PEM certificates in path, which
// the variable name names.
func caPool(name, path string, p *problems) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := tokens.ReadFile(path)
	switch {
	case err != nil:
		p.add(name, "%v", err)
	case !pool.AppendCertsFromPEM(pem):
		p.add(name, "no PEM certificate in %s", path)
	}
	return pool
}
