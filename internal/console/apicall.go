package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/internal/adminapi"
)

// apiCaller calls the admin API in-process, as the browser that made a
// request: with its cookies (the session), its address and the headers the
// API's own cross-site checks read. The API authenticates and authorizes
// every call exactly as it would the browser's.
type apiCaller struct{ h http.Handler }

// forwarded are the browser request headers an API call carries.
var forwarded = []string{"Cookie", "Authorization", "User-Agent", "Origin", "Sec-Fetch-Site", "X-Forwarded-For", "Accept-Language"}

// apiError is an admin API refusal: its status and its message, which the
// API writes for the client and the console shows as it is.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// statusOf returns the HTTP status of an API refusal, 0 for another error.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// recorder captures an in-process response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// do sends one call; in is sent as JSON when not nil, and the answer
// decoded into out when not nil. A status of 400 or more is an *apiError.
func (c apiCaller) do(from *http.Request, method, path string, in, out any) (*recorder, error) {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u, err := url.Parse(adminapi.Prefix + path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(from.Context(), method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr, req.Host, req.TLS = from.RemoteAddr, from.Host, from.TLS
	for _, h := range forwarded {
		if v := from.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	rec := &recorder{header: http.Header{}}
	c.h.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 400 {
		var eb adminapi.ErrorBody
		_ = json.Unmarshal(rec.body.Bytes(), &eb)
		msg := eb.Error.Message
		if msg == "" {
			msg = http.StatusText(rec.status)
		}
		return rec, &apiError{Status: rec.status, Code: eb.Error.Code, Message: msg}
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return rec, fmt.Errorf("read the admin API's answer to %s %s: %w", method, path, err)
		}
	}
	return rec, nil
}

// get reads path into out.
func (c apiCaller) get(from *http.Request, path string, out any) error {
	_, err := c.do(from, http.MethodGet, path, nil, out)
	return err
}
