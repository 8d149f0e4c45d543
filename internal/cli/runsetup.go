package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/secret"
)

// agentRun is what an agent profile adds to a run.
type agentRun struct {
	vars    []envVar
	command []string // the command with the profile's arguments in place
}

// helperRotate is how often the credential an agent's helper reads is
// replaced; each lives for helperLife, so one read just before a rotation
// still works until the agent asks again.
const (
	helperRotate = 4 * time.Minute
	helperLife   = 10 * time.Minute
)

// setupAgent makes the run's directory and the profile's files, and keeps
// the helper credential fresh. stop ends the rotation and removes the
// directory; it is safe to call whatever happened.
func (a *app) setupAgent(cmd *cobra.Command, p agentProfile, gw runGateway, args []string, masks *maskSet) (agentRun, func(), error) {
	dir, err := a.newRunDir()
	if err != nil {
		return agentRun{}, func() {}, err
	}
	done := make(chan struct{})
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(done)
		}
		_ = os.RemoveAll(dir)
	}
	s := &agentSetup{gw: gw, dir: dir}
	if err := p.setup(s); err != nil {
		return agentRun{}, stop, err
	}
	command := args
	if len(s.args) > 0 {
		if commandIs(p, args) {
			command = slices.Concat(args[:1], s.args, args[1:])
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: --agent %s adds %s after the %s command, but this command is %s: "+
				"run the agent's own command (one of %s) so keygate can pin its settings\n",
				p.name, strings.Join(s.args, " "), p.about, filepath.Base(args[0]), strings.Join(p.commands, ", "))
		}
	}
	if s.helperFile != "" {
		mint := func() (string, error) {
			c := gw.cred.Reveal()
			if gw.proxy != nil {
				c = gw.proxy.mint(helperLife)
			}
			masks.add(c)
			return c, writeAtomic(s.helperFile, c)
		}
		if _, err := mint(); err != nil {
			return agentRun{}, stop, err
		}
		if gw.proxy != nil {
			go func() {
				t := time.NewTicker(helperRotate)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						if _, err := mint(); err != nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "warning: keygate run could not renew the agent's credential: %v\n", err)
						}
					case <-done:
						return
					}
				}
			}()
		}
	}
	return agentRun{vars: s.vars, command: command}, stop, nil
}

// writeAtomic replaces the file at p with data, readable only by its
// owner, so a reader sees the old content or the new, never a part.
func writeAtomic(p, data string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Placeholders --print-config shows instead of what a real run makes.
const (
	placeholderGateway = "http://127.0.0.1:PORT"
	placeholderCred    = "<the run's loopback credential>"
	placeholderDir     = "<run dir>"
)

// printAgentConfig shows what the profile would set, with placeholders for
// the run's address, credential and directory, and starts nothing.
func (a *app) printAgentConfig(cmd *cobra.Command, p agentProfile, args []string) error {
	dir, err := os.MkdirTemp("", runDirPrefix+"print-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s := &agentSetup{gw: runGateway{root: placeholderGateway, cred: secret.New(placeholderCred)}, dir: dir}
	if err := p.setup(s); err != nil {
		return err
	}
	hide := func(v string) string { return strings.ReplaceAll(v, dir, placeholderDir) }
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "agent profile: %s (%s)\n", p.name, p.about)
	if len(p.commands) > 0 {
		fmt.Fprintf(w, "chosen by --agent auto for: %s\n", strings.Join(p.commands, ", "))
	}
	fmt.Fprintln(w, "environment (on top of PATH, HOME, TERM, LANG, LC_*, proxy settings and --keep-env):")
	for _, v := range s.vars {
		fmt.Fprintf(w, "  %s=%s\n", v.name, hide(v.value.Reveal()))
	}
	if len(s.args) > 0 {
		cmdName := p.commands[0]
		if len(args) > 0 {
			cmdName = args[0]
		}
		fmt.Fprintf(w, "arguments added after %s: %s\n", cmdName, hide(strings.Join(s.args, " ")))
	}
	for _, f := range s.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "file %s (0600, removed when the run ends):\n%s\n", hide(f), indent(hide(string(b))))
	}
	if s.helperFile != "" {
		fmt.Fprintf(w, "file %s: a loopback credential that lives %s, replaced every %s\n", hide(s.helperFile), helperLife, helperRotate)
	}
	fmt.Fprintln(w, "every credential works only on the run's loopback gateway, and only until the command exits")
	return nil
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
