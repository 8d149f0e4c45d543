package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFromTestdata adds every testdata input whose name starts with prefix.
func seedFromTestdata(f *testing.F, prefix string) {
	files, _ := filepath.Glob(filepath.Join("testdata", prefix+"*.in.*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkRequestResult checks a request translation either failed with a
// typed error or produced one JSON object.
func checkRequestResult(t *testing.T, out []byte, err error) {
	if err != nil {
		var ue *UnsupportedError
		var ie *InvalidError
		if !errors.As(err, &ue) && !errors.As(err, &ie) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		if out != nil {
			t.Fatal("output returned with an error")
		}
		return
	}
	if !json.Valid(out) || out[0] != '{' {
		t.Fatalf("output is not a JSON object: %s", out)
	}
}

func FuzzChatToMessagesRequest(f *testing.F) {
	seedFromTestdata(f, "c2m_req_")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ChatToMessagesRequest(body, "m", 64)
		checkRequestResult(t, out, err)
	})
}

func FuzzMessagesToChatRequest(f *testing.F) {
	seedFromTestdata(f, "m2c_req_")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := MessagesToChatRequest(body, "m")
		checkRequestResult(t, out, err)
	})
}

func FuzzResponses(f *testing.F) {
	seedFromTestdata(f, "m2c_resp_")
	seedFromTestdata(f, "c2m_resp_")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := MessagesToChatResponse(body, "m")
		checkRequestResult(t, out, err)
		out, err = ChatToMessagesResponse(body, "m")
		checkRequestResult(t, out, err)
		for _, out := range [][]byte{MessagesToChatError(500, body), ChatToMessagesError(400, body)} {
			if !json.Valid(out) {
				t.Fatalf("error body is not JSON: %s", out)
			}
		}
	})
}

// FuzzStreams feeds arbitrary bytes to both stream translators: they must
// not panic, and every data line they write must be JSON (or [DONE]), since
// strings are copied verbatim from upstream.
func FuzzStreams(f *testing.F) {
	seedFromTestdata(f, "m2c_stream_")
	seedFromTestdata(f, "c2m_stream_")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, r := range []io.ReadCloser{
			MessagesToChatStream(io.NopCloser(bytes.NewReader(in)), "m", true),
			ChatToMessagesStream(io.NopCloser(bytes.NewReader(in)), "m"),
		} {
			out, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			checkDataLines(t, out)
			if n := strings.Count(string(out), "[DONE]"); n > 1 && !bytes.Contains(in, []byte("[DONE]")) {
				t.Fatalf("[DONE] written %d times", n)
			}
		}
	})
}
