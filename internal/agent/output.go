package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
)

// view is what the templates see.
type view struct {
	// Token is the keygate access token: send it as a keygate key
	// (Authorization: Bearer, OPENAI_API_KEY...).
	Token string
	// Gateway is the gateway's URL, as configured.
	Gateway string
}

// render builds an output's contents. secret reads a vault secret's value.
func render(o Output, v view, secret func(string) (string, error)) ([]byte, error) {
	exec := func(src string) (string, error) {
		t, err := parse(src)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := t.Funcs(template.FuncMap{"secret": secret}).Execute(&b, v); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	switch o.Format {
	case FormatText:
		s, err := exec(o.Template)
		return []byte(s), err
	case FormatJSON:
		m := make(map[string]string, len(o.Values))
		for name, src := range o.Values {
			s, err := exec(src)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			m[name] = s
		}
		b, err := json.MarshalIndent(m, "", "  ")
		return append(b, '\n'), err
	case FormatEnv:
		names := make([]string, 0, len(o.Values))
		for name := range o.Values {
			names = append(names, name)
		}
		slices.Sort(names)
		var b bytes.Buffer
		for _, name := range names {
			s, err := exec(o.Values[name])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			line, err := envLine(name, s)
			if err != nil {
				return nil, err
			}
			b.WriteString(line)
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown format %q", o.Format)
}

// envLine writes one KEY=value line. A value of only plain characters is
// written as it is; any other is double-quoted with \\, \", \$ and \`
// escaped, as systemd's EnvironmentFile, Docker Compose's env_file and
// dotenv libraries read it. A value with a line break or a NUL cannot be
// written safely this way and is refused: use format json for it.
func envLine(name, v string) (string, error) {
	if strings.ContainsAny(v, "\n\r\x00") {
		return "", fmt.Errorf("%s: the value holds a line break, which an env file cannot carry safely; write it with format json or text", name)
	}
	plain := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.,/:@+=%^", c) >= 0) {
			plain = false
			break
		}
	}
	if plain {
		return name + "=" + v + "\n", nil
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return name + `="` + r.Replace(v) + "\"\n", nil
}

// writeFile replaces path with data, atomically and with mode 0600, unless
// it already holds exactly data. It reports whether it wrote.
func writeFile(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return true, nil
}
