// Command ozgateway runs the gateway: the single public address of oz
// secrets, serving native gRPC, REST and the web app on one TLS listener.
//
// Every flag has an OZ_… environment variable, named in its help; the flag
// wins. Logs are JSON on stderr. Exit codes: 0 success, 1 failure, 2 bad
// usage. With the standard OpenTelemetry variables (OTEL_TRACES_EXPORTER=otlp
// or console, OTEL_EXPORTER_OTLP_ENDPOINT…; package tracing) it traces every
// gRPC call and REST request, and the backends continue its traces; off by
// default. With --metrics-listen it serves Prometheus metrics: calls by
// gRPC method and code, REST requests by route and status.
//
// Limits at the edge, each on by default (README, "Security"): REST body
// size (--max-request-bytes) and the time to receive it
// (--body-read-timeout), connections per source address
// (--max-conns-per-source), and failed authentications per source address
// (--auth-fail-per-minute, --auth-fail-burst). The source is the TCP peer:
// behind a proxy, the proxy.
package main

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/web"
	"github.com/ozsecrets/oz/lib/dial"
	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/lib/tracing"
)

func main() {
	flagenv.Main("ozgateway", nil, func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	})
}

// help is what --help says before the flags.
var help = flagenv.Help{
	Usage: []string{"ozgateway [flags]   serve gRPC, REST and the web app on one TLS listener"},
	About: `The single public address of oz secrets. Native gRPC calls go, undecoded, to
the service that owns them, REST calls are translated to the same; they reach
the services over mutual TLS with --tls-cert, carrying the caller's bearer
token, which the services authenticate.`,
}

// options are the command's flags.
type options struct {
	listen                            string
	tlsCert, tlsKey, tlsCA            string
	secretstore, resolver, auditAddrs string
	trace                             tracing.Config
	metricsListen                     string

	maxRequestBytes   int
	bodyReadTimeout   time.Duration
	backendTimeout    time.Duration
	maxConnsPerSource int
	authFailPerMinute int
	authFailBurst     int
}

// parseFlags reads the flags from args, each defaulting to its environment
// variable (read with getenv) and then to its built-in default.
func parseFlags(args []string, getenv func(string) string, output io.Writer) (options, error) {
	var o options
	set := flagenv.New("ozgateway", help, getenv, output)
	set.String(&o.listen, "listen", "OZ_GATEWAY_ADDR", "127.0.0.1:7443", "address to serve gRPC and REST on")
	set.String(&o.tlsCert, "tls-cert", "OZ_TLS_CERT", "", "the gateway's certificate (PEM), served to callers and presented to backends; required")
	set.String(&o.tlsKey, "tls-key", "OZ_TLS_KEY", "", "the key of --tls-cert (PEM); required")
	set.String(&o.tlsCA, "tls-ca", "OZ_TLS_CA", "", "CA bundle (PEM) that verifies the backends; required")
	set.String(&o.secretstore, "secretstore-addr", "OZ_SECRETSTORE_ADDR", "", "secretstore address(es): "+dial.Rule+"; required")
	set.String(&o.resolver, "resolver-addr", "OZ_RESOLVER_ADDR", "", "resolver address(es): "+dial.Rule+"; required")
	set.String(&o.auditAddrs, "audit-addr", "OZ_AUDIT_ADDR", "", "audit address(es): "+dial.Rule+" (optional)")
	set.Int(&o.maxRequestBytes, "max-request-bytes", "OZ_GATEWAY_MAX_REQUEST_BYTES", edge.DefaultMaxRequestBytes,
		"largest REST request body, in bytes; larger ones get 413")
	set.Duration(&o.bodyReadTimeout, "body-read-timeout", "OZ_GATEWAY_BODY_READ_TIMEOUT", edge.DefaultBodyReadTimeout,
		"time to receive a REST request body; a slower one gets 400 and its connection is closed")
	set.Duration(&o.backendTimeout, "backend-timeout", "OZ_GATEWAY_BACKEND_TIMEOUT", edge.DefaultBackendTimeout,
		"time a backend has to answer a call; then 503/Unavailable naming the backend")
	set.Int(&o.maxConnsPerSource, "max-conns-per-source", "OZ_GATEWAY_MAX_CONNS_PER_SOURCE", edge.DefaultMaxConnsPerSource,
		"connections one source address may hold open; more are closed at once; 0: no limit")
	set.Int(&o.authFailPerMinute, "auth-fail-per-minute", "OZ_GATEWAY_AUTH_FAIL_PER_MINUTE", edge.DefaultAuthFailuresPerMinute,
		"failed authentications a source address may make a minute once its burst is spent; then 429/ResourceExhausted; 0: no limit")
	set.Int(&o.authFailBurst, "auth-fail-burst", "OZ_GATEWAY_AUTH_FAIL_BURST", edge.DefaultAuthFailureBurst,
		"failed authentications a source address may make in a row")
	set.String(&o.metricsListen, "metrics-listen", "OZ_GATEWAY_METRICS_LISTEN", "",
		"serve Prometheus metrics over plain HTTP at http://ADDR/metrics; empty: off")
	traceFlags := tracing.Register(set)
	if err := set.Parse(args); err != nil {
		return options{}, err
	}
	var err error
	if o.trace, err = traceFlags.Config(); err != nil {
		return options{}, set.Usage(err)
	}
	for _, pos := range []struct {
		flag string
		val  int64
		min  int64
	}{
		{"max-request-bytes", int64(o.maxRequestBytes), 1},
		{"body-read-timeout", int64(o.bodyReadTimeout), 1},
		{"backend-timeout", int64(o.backendTimeout), 1},
		{"max-conns-per-source", int64(o.maxConnsPerSource), 0},
		{"auth-fail-per-minute", int64(o.authFailPerMinute), 0},
		{"auth-fail-burst", int64(o.authFailBurst), 1},
	} {
		if pos.val < pos.min {
			if pos.min == 0 {
				return options{}, set.Usagef("--%s must not be negative (0 turns the limit off)", pos.flag)
			}
			return options{}, set.Usagef("--%s must be positive", pos.flag)
		}
	}
	for _, req := range []struct{ flag, val string }{
		{"tls-cert", o.tlsCert}, {"tls-key", o.tlsKey}, {"tls-ca", o.tlsCA},
		{"secretstore-addr", o.secretstore}, {"resolver-addr", o.resolver},
	} {
		if req.val == "" {
			return options{}, set.Usagef("--%s is required", req.flag)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	cert, cas, err := edge.LoadTLSFiles(o.tlsCert, o.tlsKey, o.tlsCA)
	if err != nil {
		return err
	}
	tp, stopTracing, err := tracing.Setup(ctx, o.trace, "ozgateway")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: spans not exported", "err", err.Error())
		}
	}()
	var reg *prometheus.Registry
	if o.metricsListen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		stop, _, err := edge.ServeMetrics(o.metricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	app, err := web.New()
	if err != nil {
		return err
	}
	srv, err := edge.New(edge.Config{
		Certificate: cert,
		BackendCAs:  cas,
		Backends: map[string]string{
			edge.SecretStore: o.secretstore,
			edge.Resolver:    o.resolver,
			edge.Audit:       o.auditAddrs,
		},
		Logger:            log,
		WebApp:            app,
		TracerProvider:    tp,
		Metrics:           registerer(reg),
		MaxRequestBytes:   int64(o.maxRequestBytes),
		BodyReadTimeout:   o.bodyReadTimeout,
		BackendTimeout:    o.backendTimeout,
		MaxConnsPerSource: cmp.Or(o.maxConnsPerSource, -1), // 0: no limit
		AuthFailures: edge.AuthFailureLimit{
			PerMinute: o.authFailPerMinute,
			Burst:     o.authFailBurst,
			Off:       o.authFailPerMinute == 0,
		},
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, l)
}

// registerer is reg, or a nil interface when metrics are off: a nil
// *Registry in an interface is not nil.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}
