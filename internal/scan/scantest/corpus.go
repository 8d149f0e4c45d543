package scantest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/keygate/keygate/internal/scan"
)

// Label is one planted value: a credential to find (Positive) or a near
// miss that must not be reported.
type Label struct {
	File     string
	Line     int // 1-based line where the value starts
	Rule     string
	Family   string
	Secret   string
	Positive bool
}

// File is one corpus file.
type File struct {
	Path string
	Data []byte
}

// Corpus is a set of files with the labels of what was planted in them.
type Corpus struct {
	Files  []File
	Labels []Label
}

// Size is the corpus's total size in bytes.
func (c *Corpus) Size() int {
	n := 0
	for _, f := range c.Files {
		n += len(f.Data)
	}
	return n
}

// Options shape a corpus.
type Options struct {
	// PerRule is how many credentials of each rule to plant.
	PerRule int
	// NearMisses is how many rounds of near misses to plant.
	NearMisses int
	// Filler is how many bytes of credential-free source-like text to add
	// in total; FileSize is the approximate size of each file.
	Filler, FileSize int
}

// Corpus builds a labelled corpus.
func (g *Gen) Corpus(o Options) *Corpus {
	if o.FileSize <= 0 {
		o.FileSize = 32 << 10
	}
	c := &Corpus{}
	type plant struct {
		s   Sample
		pos bool
	}
	var plants []plant
	ids := make([]string, 0, len(g.rules))
	for id := range g.rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for range o.PerRule {
		for _, id := range ids {
			plants = append(plants, plant{g.Positive(id), true})
		}
	}
	for range o.NearMisses {
		for _, s := range g.NearMisses() {
			plants = append(plants, plant{s, false})
		}
	}
	g.rnd.Shuffle(len(plants), func(i, j int) { plants[i], plants[j] = plants[j], plants[i] })

	filler := newFiller(g)
	total := o.Filler + len(plants)*200
	nfiles := max(1, total/o.FileSize)
	per := (len(plants) + nfiles - 1) / nfiles
	exts := []string{".py", ".go", ".js", ".env", ".yaml", ".json", ".md", ".sh", ".ipynb", ".tf", ".toml"}
	for fi := 0; fi < nfiles; fi++ {
		ext := exts[g.rnd.IntN(len(exts))]
		path := fmt.Sprintf("src/pkg%03d/file%05d%s", fi%97, fi, ext)
		var b strings.Builder
		line := 1
		mine := plants[min(len(plants), fi*per):min(len(plants), (fi+1)*per)]
		budget := o.Filler / nfiles
		for len(mine) > 0 || b.Len() < budget {
			if len(mine) > 0 && (b.Len() >= budget || g.rnd.IntN(8) == 0) {
				p := mine[0]
				mine = mine[1:]
				text, off := g.place(p.s, ext)
				c.Labels = append(c.Labels, Label{File: path, Line: line + strings.Count(text[:off], "\n"), Rule: p.s.Rule, Family: p.s.Family, Secret: SecretOf(p.s), Positive: p.pos})
				b.WriteString(text)
				b.WriteByte('\n')
				line += strings.Count(text, "\n") + 1
				continue
			}
			l := filler.line(ext)
			b.WriteString(l)
			b.WriteByte('\n')
			line++
		}
		c.Files = append(c.Files, File{Path: path, Data: []byte(b.String())})
	}
	return c
}

// place writes a sample as a line of a file with extension ext and returns
// it with the offset of the reported secret in it.
func (g *Gen) place(s Sample, ext string) (string, int) {
	name := s.Name
	if name == "" {
		name = []string{"API_KEY", "token", "credentials", "upstreamKey", "CLIENT_SECRET", "config_value", "value"}[g.rnd.IntN(7)]
	}
	v := s.Secret
	var text string
	multiline := strings.Contains(v, "\n")
	switch {
	case multiline || s.Rule == "gcp-service-account":
		text = v
	case s.Rule == "authorization-bearer":
		text = `curl -s -H "Authorization: Bearer ` + v + `" https://api.internal.example/v1/items`
	default:
		switch ext {
		case ".env":
			text = name + "=" + v
		case ".sh":
			text = "export " + name + `="` + v + `"`
		case ".yaml":
			text = "  " + strings.ToLower(name) + ": " + v
		case ".json", ".ipynb":
			text = `    "` + name + `": "` + v + `",`
		case ".go":
			text = "\t" + name + ` := "` + v + `"`
		case ".js":
			text = "const " + name + " = '" + v + "';"
		case ".tf", ".toml":
			text = strings.ToLower(name) + ` = "` + v + `"`
		case ".md":
			if s.Name == "" {
				text = "Set the " + s.Family + " key to `" + v + "` and call the API."
			} else {
				text = "    " + name + "=" + v
			}
		default:
			text = name + ` = "` + v + `"`
		}
	}
	return text, strings.Index(text, SecretOf(s))
}

// NearMisses returns one round of values that imitate credentials and must
// not be reported: bad checksums, truncations, placeholders, documented
// examples, references and ordinary values assigned to credential names.
func (g *Gen) NearMisses() []Sample {
	n := func(rule, family, secret, name string) Sample {
		return Sample{Rule: rule, Family: family, Secret: secret, Name: name}
	}
	flip := func(s string, at int) string {
		c := s[at]
		r := b62chars[(strings.IndexByte(b62chars, c)+1+g.rnd.IntN(60))%62]
		return s[:at] + string(r) + s[at+1:]
	}
	gh := g.CRC32Token("ghp_")
	npm := g.CRC32Token("npm_")
	kg := g.KeygateKey("live")
	ant := g.Positive("anthropic-api-key").Secret
	return []Sample{
		n("github-pat", "github", flip(gh, 4+g.rnd.IntN(30)), "GITHUB_TOKEN"),
		n("github-pat", "github", flip(gh, len(gh)-1-g.rnd.IntN(6)), "GITHUB_TOKEN"),
		n("github-pat", "github", gh[:len(gh)-1], "GH_TOKEN"),
		n("github-pat", "github", "ghp_"+strings.Repeat("x", 36), "GH_TOKEN"),
		n("npm-token", "npm", flip(npm, 4+g.rnd.IntN(30)), "NPM_TOKEN"),
		n("keygate-api-key", "keygate", flip(kg, 10+g.rnd.IntN(40)), "KEYGATE_KEY"),
		n("keygate-api-key", "keygate", kg[:len(kg)-2], "KEYGATE_KEY"),
		n("openai-project-key", "openai", "sk-proj-"+strings.Repeat("x", 40), "OPENAI_API_KEY"),
		n("openai-project-key", "openai", "sk-proj-...", "OPENAI_API_KEY"),
		n("openai-legacy-key", "openai", "sk-your-openai-api-key-here", "OPENAI_API_KEY"),
		n("openai-legacy-key", "openai", "sk-"+strings.Repeat("a", 48), "OPENAI_API_KEY"),
		n("anthropic-api-key", "anthropic", ant[:len(ant)-2]+"ZZ", "ANTHROPIC_API_KEY"),
		n("anthropic-api-key", "anthropic", "sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxx", "ANTHROPIC_API_KEY"),
		n("aws-access-key-id", "aws", "AKIA"+"IOSFODNN7"+"EXAMPLE", "AWS_ACCESS_KEY_ID"), // AWS's documented example
		n("aws-access-key-id", "aws", "AKIA"+strings.ToLower(g.str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)), "AWS_ACCESS_KEY_ID"),
		n("aws-secret-access-key", "aws", "wJalrXUtnFEMI/K7MDENG/"+"bPxRfiCY"+"EXAMPLEKEY", "AWS_SECRET_ACCESS_KEY"),
		n("stripe-secret-key", "stripe", "sk_live_"+strings.Repeat("0", 24), "STRIPE_KEY"),
		n("stripe-secret-key", "stripe", "sk_live_<your-secret-key>", "STRIPE_KEY"),
		n("slack-bot-token", "slack", "xoxb-your-bot-token-here", "SLACK_BOT_TOKEN"),
		n("google-api-key", "google", "AIza"+g.str(b62chars, 20), "GOOGLE_API_KEY"),
		n("generic-secret", "generic", "password", "DB_PASSWORD"),
		n("generic-secret", "generic", "${DB_PASSWORD}", "DB_PASSWORD"),
		n("generic-secret", "generic", "changeme123", "ADMIN_PASSWORD"),
		n("generic-secret", "generic", "{{ .Values.apiKey }}", "api_key"),
		n("generic-secret", "generic", "os.environ[API_KEY]", "api_key"),
		n("generic-secret", "generic", "prod/database/password", "secret_name"),
		n("generic-secret", "generic", "Bearer", "token_type"),
		n("generic-secret", "generic", "32", "PASSWORD_MIN_LENGTH"),
		n("generic-secret", "generic", "https://auth.internal.example/oauth/token", "TOKEN_URL"),
		n("generic-secret", "generic", "refreshAccessToken", "tokenHandler"),
		n("generic-secret", "generic", "not-a-real-secret", "webhook_secret"),
		n("jwt", "jwt", "eyJ"+g.str(b62chars, 20)+".eyJ"+g.str(b62chars, 20)+"."+g.str(b62chars, 20), "id_token"),
		n("database-url-password", "database", "postgres://postgres:postgres@localhost:5432/app", "DATABASE_URL"),
		n("database-url-password", "database", "postgres://app:${DB_PASSWORD}@db:5432/app", "DATABASE_URL"),
		n("private-key-rsa", "private-key", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----", ""),
		n("azure-sas-token", "azure", "https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=r&sig=<signature>", "SAS_URL"),
		n("twilio-api-key", "twilio", "SK"+strings.Repeat("0", 32), "TWILIO_KEY"),
		n("sendgrid-api-key", "sendgrid", "SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "SENDGRID_API_KEY"),
		n("generic-secret", "generic", g.hexOf(40), "commit_sha"),
		n("generic-secret", "generic", g.uuid(), "request_id"),
	}
}

func (g *Gen) uuid() string {
	h := g.str(hexchars, 32)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Found is one finding of any scanner, reduced to what labels are checked
// against.
type Found struct {
	File   string
	Line   int
	Secret string
	Family string // the family of the rule that reported it; "" if unknown
}

// Score is recall and precision for one family.
type Score struct {
	Labels, Found, FalsePositives int
}

// Recall is the share of the family's credentials found.
func (s Score) Recall() float64 {
	if s.Labels == 0 {
		return 1
	}
	return float64(s.Found) / float64(s.Labels)
}

// Precision is the share of findings attributed to the family that are
// true.
func (s Score) Precision() float64 {
	if s.Found+s.FalsePositives == 0 {
		return 1
	}
	return float64(s.Found) / float64(s.Found+s.FalsePositives)
}

// Evaluate scores findings against the corpus's labels, by the family of
// the label (recall) and of the finding (false positives). A finding
// matches a positive label in the same file when it starts on the label's
// line and its secret is the label's or contains it, or the label's
// contains it (scanners differ on where a secret ends). Findings matching
// nothing, or a near miss, are false positives; a label found twice counts
// once. The "all" entry sums every family.
func Evaluate(c *Corpus, found []Found) map[string]*Score {
	type at struct {
		file string
		line int
	}
	byLine := map[at][]int{}
	for i, l := range c.Labels {
		for k := 0; k <= strings.Count(l.Secret, "\n"); k++ {
			byLine[at{l.File, l.Line + k}] = append(byLine[at{l.File, l.Line + k}], i)
		}
	}
	scores := map[string]*Score{"all": {}}
	get := func(f string) *Score {
		if scores[f] == nil {
			scores[f] = &Score{}
		}
		return scores[f]
	}
	for _, l := range c.Labels {
		if l.Positive {
			get(l.Family).Labels++
			scores["all"].Labels++
		}
	}
	hit := make([]bool, len(c.Labels))
	for _, f := range found {
		matched := -1
		for _, i := range byLine[at{f.File, f.Line}] {
			l := c.Labels[i]
			if f.Secret != "" && (strings.Contains(f.Secret, l.Secret) || strings.Contains(l.Secret, f.Secret)) {
				matched = i
				break
			}
		}
		switch {
		case matched >= 0 && c.Labels[matched].Positive:
			if !hit[matched] {
				hit[matched] = true
				get(c.Labels[matched].Family).Found++
				scores["all"].Found++
			}
		default:
			fam := f.Family
			if matched >= 0 {
				fam = c.Labels[matched].Family
			}
			get(fam).FalsePositives++
			scores["all"].FalsePositives++
		}
	}
	return scores
}

// Missed lists the positive labels no finding matched, for test messages.
func Missed(c *Corpus, found []Found) []Label {
	got := map[string]bool{}
	for _, f := range found {
		got[fmt.Sprintf("%s:%d", f.File, f.Line)+"\x00"+f.Secret] = true
	}
	var out []Label
	for _, l := range c.Labels {
		if !l.Positive {
			continue
		}
		ok := false
		for k := range got {
			file, sec, _ := strings.Cut(k, "\x00")
			if file == fmt.Sprintf("%s:%d", l.File, l.Line) && (strings.Contains(sec, l.Secret) || strings.Contains(l.Secret, sec)) {
				ok = true
				break
			}
		}
		if !ok {
			out = append(out, l)
		}
	}
	return out
}

// RuleIDs lists the built-in rules' IDs.
func RuleIDs() []string {
	var ids []string
	for _, r := range scan.Rules() {
		ids = append(ids, r.ID)
	}
	return ids
}
