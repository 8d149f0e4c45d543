// Command keygate is a self-hosted credential gateway for AI and HTTP APIs.
// main only wires: it hands the process's arguments, environment and standard
// streams to run, which end-to-end tests call the same way.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// Time zone data built in, so key time windows and quota calendars work
	// on hosts without a zoneinfo database.
	_ "time/tzdata"

	// keygate picks its database drivers here and nowhere else.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	// Key-encryption keys held in a KMS, opened by URL (kek: in the config).
	// base64key:// (gocloud's local keeper) needs no cloud account.
	_ "gocloud.dev/secrets/awskms"
	_ "gocloud.dev/secrets/azurekeyvault"
	_ "gocloud.dev/secrets/gcpkms"
	_ "gocloud.dev/secrets/hashivault"
	_ "gocloud.dev/secrets/localsecrets"

	"github.com/keygate/keygate/internal/buildinfo"
	"github.com/keygate/keygate/internal/cli"
)

// version is empty unless a release build sets it with
// -ldflags "-X main.version=v1.2.3"; the module version and VCS revision
// the Go toolchain stamps into the binary are reported either way.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runEnviron(ctx, os.Args[1:], os.Getenv, os.Environ, os.Stdin, os.Stdout, os.Stderr)
	stop()
	// `keygate run` ends with its command's exit code, and the command has
	// already said what went wrong.
	var exit *cli.ExitCodeError
	if errors.As(err, &exit) {
		os.Exit(exit.Code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keygate:", err)
		os.Exit(1)
	}
}

// run executes one keygate command line. The command `keygate run` starts
// gets only the variables it asks for; runEnviron passes a base environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runEnviron(ctx, args, getenv, nil, stdin, stdout, stderr)
}

// runEnviron executes one keygate command line; environ lists the
// environment that `keygate run` starts its command with (nil: none).
func runEnviron(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdin io.Reader, stdout, stderr io.Writer) error {
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	sio := cli.IO{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: getenv, Environ: environ, HomeDir: home, Version: buildinfo.Read(version).String(), OpenBrowser: cli.OpenBrowser}
	root := cli.Root(sio, serveCommand(sio, nil), benchCommand(sio), chaosCommand(sio), adminCommand(sio), healthcheckCommand(sio))
	// `vault restore` opens the data directory itself, without the admin API.
	cli.VaultCommand(root).AddCommand(vaultRestoreCommand(sio))
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	return root.ExecuteContext(ctx)
}
