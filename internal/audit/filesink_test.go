package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileSinkRotatesAndReadsBackInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 2000, Keep: 50})
	if err != nil {
		t.Fatal(err)
	}
	evs := trail(t, 100)
	for i := 0; i < len(evs); i += 7 {
		if err := s.Write(t.Context(), evs[i:min(i+7, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatalf("expected %s after rotation: %v", name, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("read %d events, want 100", len(got))
	}
	if err := Verify(got, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkKeepsOnlyKeepFiles(t *testing.T) {
	pub, priv := testKey(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 1000, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	evs := trail(t, 60)
	var cps []Checkpoint
	for i := 0; i < len(evs); i += 5 {
		if err := s.Write(t.Context(), evs[i:i+5]); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, Sign(priv, evs[i+4]))
	}
	s.Close()
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more rotated files kept than Keep")
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 60 || got[len(got)-1].Seq != 60 {
		t.Fatalf("read %d events ending at %d", len(got), got[len(got)-1].Seq)
	}
	// Rotation dropped the oldest events on a batch boundary, which a checkpoint vouches for.
	if err := Verify(got, cps, pub); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkAppendsAcrossReopenAndTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	evs := trail(t, 4)
	for _, part := range [][]Event{evs[:2], evs[2:]} {
		s, err := OpenFile(path, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(t.Context(), part); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := ReadFile(path)
	if err != nil || len(got) != 4 {
		t.Fatalf("read %d events: %v", len(got), err)
	}
}

func TestReadFileRejectsTornAndForeignLines(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"torn":    `{"seq":1,"time":"2026-01-01T00:00:00Z","type":"x","prev":"","hash":""}` + "\n" + `{"seq":2,`,
		"foreign": `{"seq":1,"time":"2026-01-01T00:00:00Z","type":"x","note":"hi","prev":"","hash":""}` + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: got %v, want an error naming the line", name, err)
		}
	}
}
