// Command keygate is a self-hosted credential gateway for AI and HTTP APIs.
// main only wires: it hands the process's arguments, environment and standard
// streams to run, which end-to-end tests call the same way.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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

	"github.com/keygate/keygate/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keygate:", err)
		os.Exit(1)
	}
}

// run executes one keygate command line.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	sio := cli.IO{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: getenv, HomeDir: home, Version: version}
	root := cli.Root(sio, serveCommand(sio, nil), benchCommand(sio), adminCommand(sio))
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	return root.ExecuteContext(ctx)
}
