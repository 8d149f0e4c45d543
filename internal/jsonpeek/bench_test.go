package jsonpeek

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// chatBody is a typical 2 KB chat completion request.
func chatBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a careful assistant for an internal support desk. Answer briefly and cite the ticket number."}`)
	for i := 0; b.Len() < 1800; i++ {
		b.WriteString(`,{"role":"user","content":"The build on branch \"release/2.3\" fails with exit code 2; logs say: cannot find module. What changed?"},`)
		b.WriteString(`{"role":"assistant","content":"The module path moved in commit 4f2a; update go.mod and re-run \u0060go build\u0060."}`)
	}
	b.WriteString(`],"temperature":0.2,"top_p":1,"stream":true,"max_tokens":512,"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"model":{"type":"string"}}}}}]}`)
	return b.Bytes()
}

// bigBody is a request of about size bytes, almost all one base64 image.
func bigBody(size int) []byte {
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xfe}, size*3/4/9))
	return []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,` + img + `"}}]}],"max_tokens":300}`)
}

type baseline struct {
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	MaxTokens int64  `json:"max_tokens"`
}

func benchBodies() []struct {
	name string
	body []byte
} {
	return []struct {
		name string
		body []byte
	}{{"chat2KB", chatBody()}, {"base64_1MB", bigBody(1 << 20)}}
}

func BenchmarkScan(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				f, err := Scan(bb.body)
				if err != nil || !f.HasModel {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodingJSONUnmarshal(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				var v baseline
				if err := json.Unmarshal(bb.body, &v); err != nil || v.Model == "" {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReplaceString(b *testing.B) {
	for _, bb := range benchBodies() {
		body := bytes.Replace(bb.body, []byte(`"model":"`), []byte(`"model":"openai/`), 1)
		f, err := Scan(body)
		if err != nil || !strings.HasPrefix(f.Model, "openai/") {
			b.Fatal(f.Model, err)
		}
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_ = ReplaceString(body, f.ModelSpan, f.Model[len("openai/"):])
			}
		})
	}
}
