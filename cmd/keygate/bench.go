package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/bench"
	"github.com/keygate/keygate/internal/cli"
)

// benchCommand builds `keygate bench` and the hidden server commands it
// starts as child processes.
func benchCommand(sio cli.IO) *cobra.Command {
	o := bench.Options{Concurrencies: []int{1, 32, 128}, Round: 3 * time.Second, Rounds: 3, StreamSamples: 200}
	var short, inProcess bool
	var cpuProfile, memProfile string
	var minRatio float64
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure keygate against a bare reverse proxy on this machine",
		Long: `Start a fake OpenAI upstream, a bare httputil.ReverseProxy that injects the key
(the baseline) and a real keygate with a realistic key, each as its own
process, then drive each with the same load in alternating rounds and print
requests/s, latency percentiles, streaming time to first byte and memory.
"keygate, translated" sends the same OpenAI chat request for a model that
keygate routes to a fake Anthropic upstream, translated both ways.

--short is a few-second run for CI; with --min-ratio it fails when keygate's
throughput falls below that fraction of the baseline's at any concurrency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				o.Concurrencies, o.Round, o.Rounds, o.StreamSamples = []int{1, 32}, time.Second, 2, 30
			}
			if !inProcess {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find the keygate executable: %w", err)
				}
				o.Binary = exe
			}
			o.Progress = sio.Stderr
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if memProfile != "" {
				runtime.GC() // what is live, not what was allocated
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
					return err
				}
			}
			rep.WriteMarkdown(sio.Stdout)
			for _, c := range o.Concurrencies {
				if r := rep.Ratio(c); minRatio > 0 && r < minRatio {
					return fmt.Errorf("keygate served %.2fx the baseline's requests/s at concurrency %d, below the required %.2fx", r, c, minRatio)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&o.Concurrencies, "concurrency", o.Concurrencies, "connection counts to drive")
	f.DurationVar(&o.Round, "round", o.Round, "time per target per round")
	f.IntVar(&o.Rounds, "rounds", o.Rounds, "alternating rounds per concurrency")
	f.IntVar(&o.Keys, "keys", 0, "also drive keygate with this many distinct keys (cycled) instead of one hot key")
	f.StringVar(&o.Redis, "redis", "", "also drive a keygate that keeps its limits in this Redis (redis://...)")
	f.BoolVar(&o.Tracing, "tracing", false, "also drive a keygate that traces requests and exports them over OTLP/HTTP to a collector in this process")
	f.Float64Var(&o.TracingRatio, "tracing-sample-ratio", 1, "with --tracing: the fraction of requests traced")
	f.BoolVar(&o.NoLeakCheck, "no-leak-check", false, "also drive a keygate with the credential check on the data path off (\"keygate, no leak check\"): what the check costs")
	f.IntVar(&o.StreamSamples, "stream-samples", o.StreamSamples, "streaming requests for time to first byte")
	f.BoolVar(&short, "short", false, "a few-second run for CI")
	f.BoolVar(&inProcess, "in-process", false, "run the servers inside this process (no memory figures)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (use with --in-process to see keygate's own frames)")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile of this process after the run (use with --in-process to see what keygate keeps)")
	f.Float64Var(&minRatio, "min-ratio", 0, "fail when keygate's requests/s fall below this fraction of the baseline's")

	var anthropic bool
	up := &cobra.Command{
		Use: "serve-upstream", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			serve := bench.ServeUpstream
			if anthropic {
				serve = bench.ServeAnthropicUpstream
			}
			return serveChild(sio, func(ctx context.Context, ln net.Listener) error {
				return serve(ctx, ln, sio.Getenv("KEYGATE_BENCH_UPSTREAM_KEY"))
			})
		},
	}
	up.Flags().BoolVar(&anthropic, "anthropic", false, "serve Anthropic's Messages API instead of OpenAI's")
	cmd.AddCommand(up)
	var upstream string
	var pooled bool
	base := &cobra.Command{
		Use: "serve-baseline", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(upstream)
			if err != nil {
				return err
			}
			return serveChild(sio, func(ctx context.Context, ln net.Listener) error {
				return bench.ServeBaseline(ctx, ln, u, sio.Getenv("KEYGATE_BENCH_UPSTREAM_KEY"), pooled)
			})
		},
	}
	base.Flags().StringVar(&upstream, "upstream", "", "upstream base URL")
	base.Flags().BoolVar(&pooled, "pooled", false, "give the proxy a copy-buffer pool")
	cmd.AddCommand(base)
	return cmd
}

// serveChild listens on a loopback port, announces it, and serves until SIGTERM.
func serveChild(sio cli.IO, serve func(context.Context, net.Listener) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(sio.Stdout, "ready http://%s\n", ln.Addr())
	return serve(ctx, ln)
}
