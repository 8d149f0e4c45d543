package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// Fixed values the golden files are written with.
const (
	goldenUpstreamModel = "upstream-model-test"
	goldenClientModel   = "client-model-test"
	goldenMaxTokens     = 1024
	goldenCreated       = 1700000000
)

// runCase translates one testdata input the way its name says:
// <direction>_<kind>_<rest>, direction c2m (OpenAI client, Anthropic
// upstream), m2c, m2v (Anthropic request to Bedrock Converse) or v2m
// (Converse answer to Anthropic), kind req, resp, stream or err.
func runCase(t *testing.T, name string, in []byte) []byte {
	t.Helper()
	parts := strings.SplitN(name, "_", 3)
	if len(parts) < 3 {
		t.Fatalf("case name %q does not say what to run", name)
	}
	dir, kind, rest := parts[0], parts[1], parts[2]
	var out []byte
	var err error
	switch dir + "_" + kind {
	case "c2m_req":
		out, err = ChatToMessagesRequest(in, goldenUpstreamModel, goldenMaxTokens)
	case "m2c_req":
		out, err = MessagesToChatRequest(in, goldenUpstreamModel)
	case "m2c_resp":
		out, err = messagesToChatResponse(in, goldenClientModel, goldenCreated)
	case "c2m_resp":
		out, err = ChatToMessagesResponse(in, goldenClientModel)
	case "m2c_stream":
		r := newStreamReader(io.NopCloser(bytes.NewReader(in)), newChatStream(goldenClientModel, !strings.Contains(rest, "nousage"), goldenCreated))
		out, err = io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case "c2m_stream":
		out, err = io.ReadAll(ChatToMessagesStream(io.NopCloser(bytes.NewReader(in)), goldenClientModel))
		if err != nil {
			t.Fatal(err)
		}
		return out
	case "m2v_req", "v2m_resp", "v2m_stream":
		var stream bool
		out, err, stream = runConverseCase(t, dir+"_"+kind, rest, in)
		if stream {
			return out
		}
	case "m2c_err", "c2m_err":
		status, _, _ := strings.Cut(rest, "_")
		code, convErr := strconv.Atoi(status)
		if convErr != nil {
			t.Fatalf("error case %q does not start with a status", name)
		}
		if dir == "m2c" {
			out = MessagesToChatError(code, in)
		} else {
			out = ChatToMessagesError(code, in)
		}
	default:
		t.Fatalf("case name %q does not say what to run", name)
	}
	if err != nil {
		var ue *UnsupportedError
		var ie *InvalidError
		if !errors.As(err, &ue) && !errors.As(err, &ie) {
			t.Fatalf("error of type %T, want *UnsupportedError or *InvalidError: %v", err, err)
		}
		return fmt.Appendf(nil, "error %T: %v\n", err, err)
	}
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %s", out)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, out, "", "  "); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// TestGolden runs every testdata/<case>.in.* file and compares the output
// byte for byte with <case>.golden; the translators write keys in a fixed
// order, so bytes are a fair comparison. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.in.*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		name := base[:strings.Index(base, ".in.")]
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := runCase(t, name, in)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}
