package ready

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Get is the client side of a probe, for `keygate healthcheck` in a
// container that has no curl: it fetches url and returns nil on 200, or an
// error carrying the status and the probe's answer. With pinned (the DER
// bytes of a certificate), an https:// server must present exactly that
// certificate: the health check trusts what keygate was configured to
// serve, whatever name it was issued for.
func Get(ctx context.Context, url string, pinned []byte, timeout time.Duration) error {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if pinned != nil {
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The chain is checked below, by identity with the pinned
			// certificate, instead of against a CA and a host name.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
					return errors.New("keygate serves another certificate than its configured one (tls.cert, or the self-signed one in the data directory); if the file was renewed, restart keygate to load it")
				}
				return nil
			},
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
