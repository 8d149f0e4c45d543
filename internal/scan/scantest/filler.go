package scantest

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// filler writes credential-free lines that look like source code and
// configuration, with the values real repositories are full of and that
// resemble credentials without being any: commit hashes, digests, UUIDs,
// integrity strings, URLs, and names such as token_type or password_min.
type filler struct {
	g     *Gen
	words []string
}

func newFiller(g *Gen) *filler {
	return &filler{g: g, words: strings.Fields(`request response handler client server config value result error
context buffer stream reader writer parse render update delete create list fetch store cache index
user account session order item price total count limit offset page query filter sort field record
model prompt message content role tools stream choice delta usage tokens input output metric event
retry backoff timeout deadline worker queue batch job task schedule status health check ready alive
path route method header body payload encode decode marshal format template layout style theme`)}
}

func (f *filler) w() string { return f.words[f.g.rnd.IntN(len(f.words))] }

func (f *filler) ident() string {
	a, b := f.w(), f.w()
	switch f.g.rnd.IntN(3) {
	case 0:
		return a + "_" + b
	case 1:
		return a + strings.ToUpper(b[:1]) + b[1:]
	}
	return a
}

func (f *filler) line(ext string) string {
	g := f.g
	r := g.rnd.IntN(40)
	switch {
	case r == 0:
		return fmt.Sprintf(`commit = "%s"`, g.str(hexchars, 40))
	case r == 1:
		return fmt.Sprintf(`    "integrity": "sha512-%s",`, base64.StdEncoding.EncodeToString([]byte(g.str(b62chars, 64))))
	case r == 2:
		return fmt.Sprintf(`request_id = "%s"`, g.uuid())
	case r == 3:
		return fmt.Sprintf(`digest: sha256:%s`, g.str(hexchars, 64))
	case r == 4:
		return []string{`token_type = "Bearer"`, `password_min_length = 12`, `secret_name: prod/db-password`,
			`api_key_header = "X-API-Key"`, `TOKEN_URL = "https://auth.internal.example/oauth/token"`,
			`if password == "" { return errMissingPassword }`, `api_key = os.environ["API_KEY"]`,
			`client_secret: ${CLIENT_SECRET}`, `token = get_token(session)`, `apiKey: process.env.API_KEY,`,
			`password: {{ .Values.db.password }}`, `secret_ref = "vault:payments/stripe"`,
			`keyboard_layout = "us"`, `monkey_patch = True`, `cache_key = f"user:{user_id}"`}[g.rnd.IntN(15)]
	case r == 5:
		return fmt.Sprintf(`<img src="data:image/png;base64,%s">`, base64.StdEncoding.EncodeToString([]byte(g.str(b62chars, 90))))
	case r == 6:
		return fmt.Sprintf(`url = "https://%s.example.com/%s/%s?page=%d"`, f.w(), f.w(), f.w(), g.rnd.IntN(100))
	case r < 12:
		return "# " + f.w() + " the " + f.w() + " before the " + f.w() + " " + f.w() + " so the " + f.w() + " does not " + f.w()
	}
	switch ext {
	case ".go":
		return fmt.Sprintf("\t%s := %s.%s(ctx, %s, %d)", f.ident(), f.w(), strings.ToUpper(f.w()[:1])+f.w()[1:], f.ident(), g.rnd.IntN(1000))
	case ".py", ".ipynb":
		return fmt.Sprintf("    %s = self.%s(%s=%s, %s=%d)", f.ident(), f.ident(), f.w(), f.ident(), f.w(), g.rnd.IntN(1000))
	case ".js":
		return fmt.Sprintf("  const %s = await %s.%s({ %s: %s });", f.ident(), f.w(), f.ident(), f.w(), f.ident())
	case ".yaml":
		return fmt.Sprintf("  %s: %s-%d", f.ident(), f.w(), g.rnd.IntN(100))
	case ".json":
		return fmt.Sprintf(`    "%s": "%s",`, f.ident(), f.w())
	case ".env", ".sh":
		return fmt.Sprintf("%s_%s=%s", strings.ToUpper(f.w()), strings.ToUpper(f.w()), f.w())
	case ".tf", ".toml":
		return fmt.Sprintf(`  %s = "%s-%d"`, f.ident(), f.w(), g.rnd.IntN(100))
	}
	return "The " + f.w() + " " + f.w() + " returns the " + f.w() + " of each " + f.w() + "."
}
