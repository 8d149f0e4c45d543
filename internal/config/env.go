package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvVars lists every KEYGATE_* variable Load reads, with the YAML field it sets.
func EnvVars() [][2]string {
	var out [][2]string
	walk(reflect.ValueOf(&Config{}).Elem(), "", func(path string, _ reflect.Value) error {
		out = append(out, [2]string{envName(path), path})
		return nil
	})
	return out
}

func envName(path string) string {
	return "KEYGATE_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets every field whose KEYGATE_* variable is non-empty.
func applyEnv(c *Config, getenv func(string) string) error {
	return walk(reflect.ValueOf(c).Elem(), "", func(path string, f reflect.Value) error {
		name := envName(path)
		v := getenv(name)
		if v == "" {
			return nil
		}
		if err := setField(f, v); err != nil {
			return fmt.Errorf("config: %s (from %s): %w", path, name, err)
		}
		return nil
	})
}

// walk calls fn for every leaf field with its dotted YAML path.
func walk(v reflect.Value, prefix string, fn func(path string, f reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Duration]() {
			if err := walk(f, path, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(path, f); err != nil {
			return err
		}
	}
	return nil
}

func setField(f reflect.Value, v string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", v)
		}
		f.SetInt(int64(d))
		return nil
	case ByteSize:
		var b ByteSize
		if err := b.parse(v); err != nil {
			return err
		}
		f.SetInt(int64(b))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(v)
	case reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		f.SetBool(b)
	case reflect.Float64:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number such as 0.25", v)
		}
		f.SetFloat(x)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		f.SetInt(n)
	case reflect.Slice:
		if f.Type() != reflect.TypeFor[[]string]() {
			return fmt.Errorf("cannot be set from the environment; use the configuration file")
		}
		var items []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
