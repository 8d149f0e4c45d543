package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/web"
)

// bindListeners binds the gateway and admin ports, plain TCP: TLS is laid
// over them by serveTLS once the data directory exists (a self-signed
// certificate is written there). On error nothing stays bound.
func bindListeners(p *plan) (gw, adm net.Listener, err error) {
	gw, err = net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return nil, nil, listenError("gateway", p.cfg.Listen, "--listen (listen: in the config file)", err)
	}
	adm, err = net.Listen("tcp", p.cfg.AdminListen)
	if err != nil {
		gw.Close()
		return nil, nil, listenError("admin", p.cfg.AdminListen, "--admin-listen (admin_listen: in the config file)", err)
	}
	return gw, adm, nil
}

// listenError says which listener could not bind and what to do about it.
func listenError(which, addr, setting string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s listener: %s is in use by another program (perhaps another keygate): stop it, or give keygate another address with %s (%w)", which, addr, setting, err)
	}
	return fmt.Errorf("%s listener on %s: %w (check the address given with %s)", which, addr, err, setting)
}

// serveTLS lays TLS over the bound listeners when the configuration asks
// for it, and reports the URL scheme they serve. The gateway also asks
// clients for a certificate from tls.client_ca and verifies any they
// present; presenting none stays allowed (keys that require one are
// refused at the key check).
func serveTLS(p *plan, gw, adm net.Listener) (gwOut, admOut net.Listener, scheme string, err error) {
	cfg := p.cfg
	var cert tls.Certificate
	switch {
	case p.cert != nil:
		cert = *p.cert
	case cfg.TLS.SelfSigned:
		var hosts []string
		for _, a := range []string{cfg.Listen, cfg.AdminListen} {
			if h, _, err := net.SplitHostPort(a); err == nil {
				hosts = append(hosts, h)
			}
		}
		if cert, err = web.SelfSigned(filepath.Join(cfg.DataDir, "tls", "self-signed.crt"), hosts, time.Now()); err != nil {
			return nil, nil, "", err
		}
	default:
		return gw, adm, "http", nil
	}
	admTLS := web.TLSConfig(cert)
	gwTLS := admTLS
	if p.clientCAs != nil {
		gwTLS = admTLS.Clone()
		gwTLS.ClientAuth = tls.VerifyClientCertIfGiven
		gwTLS.ClientCAs = p.clientCAs
	}
	return tls.NewListener(gw, gwTLS), tls.NewListener(adm, admTLS), "https", nil
}
