package translate

import (
	"encoding/base64"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// converseDocument is a Converse document block with its bytes inline.
type converseDocument struct {
	Format string `json:"format"`
	Name   string `json:"name"`
	Source struct {
		Bytes string `json:"bytes"`
	} `json:"source"`
	Context string `json:"context,omitempty"`
}

// converseDocFormat is the Converse format of a document media type, ""
// for one Converse does not take.
func converseDocFormat(mediaType string) string {
	switch mediaType {
	case "application/pdf":
		return "pdf"
	case "text/plain":
		return "txt"
	case "text/markdown", "text/x-markdown":
		return "md"
	case "text/html":
		return "html"
	case "text/csv":
		return "csv"
	case "application/msword":
		return "doc"
	case "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
		return "docx"
	case "application/vnd.ms-excel":
		return "xls"
	case "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
		return "xlsx"
	}
	return ""
}

// converseDocExtension is the Converse format a file name's extension
// names: the format's own name, or another common spelling; "" for none.
func converseDocExtension(filename string) string {
	switch ext := strings.ToLower(strings.TrimPrefix(path.Ext(filename), ".")); ext {
	case "pdf", "txt", "md", "html", "csv", "doc", "docx", "xls", "xlsx":
		return ext
	case "text":
		return "txt"
	case "markdown":
		return "md"
	case "htm":
		return "html"
	}
	return ""
}

// converseFormatList is what an error lists as the formats Converse takes.
const converseFormatList = "pdf, txt, md, html, csv, doc, docx, xls and xlsx"

// maxDocName is the longest document name Converse takes.
const maxDocName = 200

// converseDocNames gives the documents of one request their names: Converse
// requires one on each, in a restricted alphabet, and keygate keeps them
// apart so that no two documents of a request share one.
type converseDocNames struct {
	n    int
	used map[string]bool
}

// name returns a Converse document name for a document titled title
// (often a file name): its extension dropped, every character Converse
// refuses in a name turned into a space, runs of spaces made one; a
// title with nothing left becomes "document N". A name already used gets
// " (2)", " (3)"... added.
func (d *converseDocNames) name(title string) string {
	d.n++
	if d.used == nil {
		d.used = map[string]bool{}
	}
	title = title[strings.LastIndexAny(title, `/\`)+1:]
	if converseDocExtension(title) != "" {
		title = strings.TrimSuffix(title, path.Ext(title))
	}
	var b strings.Builder
	space := true // no leading space
	for _, r := range title {
		ok := r == '-' || r == '(' || r == ')' || r == '[' || r == ']' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		switch {
		case ok:
			b.WriteRune(r)
			space = false
		case !space:
			b.WriteByte(' ')
			space = true
		}
		if b.Len() >= maxDocName-8 {
			break
		}
	}
	name := strings.TrimSpace(b.String())
	if name == "" {
		name = "document " + strconv.Itoa(d.n)
	}
	base := name
	for i := 2; d.used[name]; i++ {
		name = base + " (" + strconv.Itoa(i) + ")"
	}
	d.used[name] = true
	return name
}

// converseDocumentFrom turns an Anthropic document block (a base64 source,
// or a plain text one) into a Converse document with its bytes inline. The
// format comes from the media type; one Converse does not know by it
// (application/octet-stream, or text/plain for a CSV file) is read from
// the title's extension.
func converseDocumentFrom(b converseBlockIn, p string, names *converseDocNames) (*converseDocument, error) {
	src := b.Source
	if src == nil {
		return nil, invalid(p+".source", "a document block needs a source")
	}
	if !isNull(b.Citations) {
		var c struct {
			Enabled bool `json:"enabled"`
		}
		if err := decode(b.Citations, &c, p+".citations", "an object"); err != nil {
			return nil, err
		}
		if c.Enabled {
			return nil, unsupportedConverse(p+".citations", "citations from Converse are not translated back; leave citations out")
		}
	}
	byExt := converseDocExtension(b.Title)
	doc := &converseDocument{Context: b.Context}
	switch src.Type {
	case "base64":
		if src.Data == "" {
			return nil, invalid(p+".source.data", "a base64 document needs its data")
		}
		if !isBase64(src.Data) {
			return nil, invalid(p+".source.data", "the document's data is not base64")
		}
		mt, _, _ := strings.Cut(src.MediaType, ";")
		doc.Format = converseDocFormat(strings.TrimSpace(strings.ToLower(mt)))
		if doc.Format == "" || (doc.Format == "txt" && byExt != "") {
			doc.Format = byExt
		}
		if doc.Format == "" {
			return nil, unsupportedConverse(p+".source.media_type", fmt.Sprintf("Converse takes documents in %s; media type %q is none of them (a title with the file's extension also names the format)", converseFormatList, src.MediaType))
		}
		doc.Source.Bytes = src.Data
	case "text":
		if src.MediaType != "" && src.MediaType != "text/plain" {
			return nil, invalid(p+".source.media_type", `a text document source is "text/plain"`)
		}
		if src.Data == "" {
			return nil, invalid(p+".source.data", "a text document needs its text")
		}
		doc.Format = "txt"
		if byExt == "md" || byExt == "html" || byExt == "csv" {
			doc.Format = byExt
		}
		doc.Source.Bytes = base64.StdEncoding.EncodeToString([]byte(src.Data))
	case "url":
		return nil, unsupportedConverse(p+".source.type", "Converse takes a document's bytes, not a URL; fetch the document and send it as a base64 source")
	case "content":
		return nil, unsupportedConverse(p+".source.type", "a document made of content blocks has no Converse counterpart; send its text as a text source")
	case "file":
		return nil, unsupportedConverse(p+".source.type", "a file uploaded to Anthropic's Files API cannot be read from Bedrock; send the document as a base64 source")
	default:
		return nil, unsupportedConverse(p+".source.type", fmt.Sprintf("document source %q has no Converse counterpart; send a base64 or text source", src.Type))
	}
	doc.Name = names.name(b.Title)
	return doc, nil
}

// isBase64 reports whether s has the shape of standard, padded base64,
// without decoding it (a document may be megabytes, and is checked on
// every request).
func isBase64(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			pad++
		case pad > 0:
			return false
		case (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/':
		default:
			return false
		}
	}
	return pad <= 2
}
