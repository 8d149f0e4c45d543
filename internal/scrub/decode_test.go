package scrub

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// encode applies the codings named, left to right, as a server would for
// "Content-Encoding: a, b". "deflate" is zlib-wrapped, "rawdeflate" bare.
func encode(t testing.TB, b []byte, codings ...string) []byte {
	t.Helper()
	for _, c := range codings {
		var out bytes.Buffer
		var w io.WriteCloser
		switch c {
		case "gzip", "x-gzip":
			w = gzip.NewWriter(&out)
		case "deflate":
			w = zlib.NewWriter(&out)
		case "rawdeflate":
			w, _ = flate.NewWriter(&out, flate.DefaultCompression)
		default:
			t.Fatalf("unknown coding %q", c)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b = out.Bytes()
	}
	return b
}

// response builds an upstream response with body and Content-Encoding.
func response(status int, body []byte, encoding ...string) *http.Response {
	h := http.Header{"Content-Length": {strconv.Itoa(len(body))}, "Content-Type": {"application/json"}}
	for _, e := range encoding {
		h.Add("Content-Encoding", e)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

// TestDecodeEveryAcceptedEncoding: each coding keygate accepts, alone and
// stacked, decodes to the plain body, and DecodeResponse fixes the headers.
func TestDecodeEveryAcceptedEncoding(t *testing.T) {
	plain := []byte(`{"error":{"message":"Incorrect API key provided: ` + testKey + `"}}`)
	for _, tc := range []struct {
		name     string
		header   []string // Content-Encoding lines
		codings  []string // applied, in order
		identity bool
	}{
		{"gzip", []string{"gzip"}, []string{"gzip"}, false},
		{"x-gzip", []string{"x-gzip"}, []string{"gzip"}, false},
		{"upper case", []string{"GZIP"}, []string{"gzip"}, false},
		{"deflate zlib", []string{"deflate"}, []string{"deflate"}, false},
		{"deflate raw", []string{"deflate"}, []string{"rawdeflate"}, false},
		{"gzip, gzip", []string{"gzip, gzip"}, []string{"gzip", "gzip"}, false},
		{"deflate then gzip", []string{"deflate, gzip"}, []string{"deflate", "gzip"}, false},
		{"two header lines", []string{"gzip", "deflate"}, []string{"gzip", "deflate"}, false},
		{"with identity", []string{"identity, gzip"}, []string{"gzip"}, false},
		{"identity", []string{"identity"}, nil, true},
		{"none", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := response(200, encode(t, plain, tc.codings...), tc.header...)
			if err := DecodeResponse(resp); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("got %q, %v", got, err)
			}
			if tc.identity {
				if resp.ContentLength != int64(len(plain)) || resp.Header.Get("Content-Length") == "" {
					t.Fatal("an unencoded body lost its length")
				}
				return
			}
			if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 || !resp.Uncompressed {
				t.Fatalf("headers not fixed: %q, ContentLength %d", resp.Header, resp.ContentLength)
			}
		})
	}
}

// TestRefusedEncodings: codings keygate cannot decode, too deep a stack
// and an encoded part of a body give an *EncodingError naming the coding,
// and leave the response as it was.
func TestRefusedEncodings(t *testing.T) {
	for _, tc := range []struct {
		status int
		header []string
		want   string
	}{
		{200, []string{"br"}, `"br"`},
		{200, []string{"zstd"}, `"zstd"`},
		{200, []string{"compress"}, `"compress"`},
		{200, []string{"gzip, br"}, `"br"`},
		{200, []string{"gzip", "x-unknown"}, `"x-unknown"`},
		{200, []string{"gzip, gzip, gzip, gzip"}, "stacked"},
		{http.StatusPartialContent, []string{"gzip"}, "206"},
	} {
		resp := response(tc.status, []byte("opaque"), tc.header...)
		before := resp.Header.Clone()
		body := resp.Body
		err := DecodeResponse(resp)
		var ee *EncodingError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: err %v, want an *EncodingError mentioning %s", tc.header, err, tc.want)
		}
		if resp.Body != body || resp.Header.Get("Content-Encoding") != before.Get("Content-Encoding") || resp.Header.Get("Content-Length") != "6" {
			t.Fatalf("%q: the response changed on error", tc.header)
		}
	}
}

// TestDecodeEmptyAndCorruptBodies: an encoded empty body (HEAD, 204) reads
// as empty; a corrupt one fails the Read with an error that says so.
func TestDecodeEmptyAndCorruptBodies(t *testing.T) {
	for _, enc := range []string{"gzip", "deflate"} {
		resp := response(200, nil, enc)
		if err := DecodeResponse(resp); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(resp.Body); err != nil || len(got) != 0 {
			t.Fatalf("%s empty body: %q, %v", enc, got, err)
		}
		resp = response(200, []byte("\x1f\x8b not really compressed"), enc)
		if err := DecodeResponse(resp); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err == nil || !strings.Contains(err.Error(), enc) {
			t.Fatalf("%s corrupt body: %v", enc, err)
		}
	}
}

// TestEncodedErrorBodyOverHTTP: through a real HTTP exchange, a deflate
// or doubly gzipped error body with the key after the first MiB reaches
// the reader plain and scrubbed; a brotli one is refused.
func TestEncodedErrorBodyOverHTTP(t *testing.T) {
	pad := strings.Repeat("0123456789abcdef", (2<<20)/16)
	plain := []byte(`{"error":{"pad":"` + pad[:1<<20] + `","message":"bad key ` + testKey + `"},"end":"` + pad[1<<20:] + `"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := r.URL.Query().Get("enc")
		body := plain
		switch enc {
		case "deflate":
			body = encode(t, plain, "deflate")
		case "gzip, gzip":
			body = encode(t, plain, "gzip", "gzip")
		case "br":
			body = []byte("\x0b\x02\x80opaque")
		}
		w.Header().Set("Content-Encoding", enc)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	s := New(Credential{Key: secret.New(testKey), Header: secret.New("Bearer " + testKey)})
	for _, enc := range []string{"deflate", "gzip, gzip", "br"} {
		req, _ := http.NewRequest("GET", srv.URL+"/?enc="+url.QueryEscape(enc), nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Response(resp)
		if enc == "br" {
			var ee *EncodingError
			if !errors.As(err, &ee) {
				t.Fatalf("br: %v, want an *EncodingError", err)
			}
			resp.Body.Close()
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if want := reference(s, plain); !bytes.Equal(got, want) || bytes.Contains(got, []byte(testKey)) {
			t.Fatalf("%s: %d bytes, want the %d-byte plain body with the key masked", enc, len(got), len(want))
		}
		if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Length") != "" {
			t.Fatalf("%s: headers %q", enc, resp.Header)
		}
	}
}

// TestEncodingErrorNeverCarriesTheKey: an upstream that puts the key in
// Content-Encoding does not get it into the 502 message.
func TestEncodingErrorNeverCarriesTheKey(t *testing.T) {
	s, _ := basicSet(t)
	for _, enc := range []string{"gzip, " + testKey, testKey + ", gzip", "Bearer " + testKey} {
		resp := response(200, []byte("x"), enc)
		err := s.Response(resp)
		var ee *EncodingError
		if !errors.As(err, &ee) {
			t.Fatalf("%q: %v, want an *EncodingError", enc, err)
		}
		if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), testKey[:20]) {
			t.Fatalf("the message carries the key: %s", err)
		}
	}
}
