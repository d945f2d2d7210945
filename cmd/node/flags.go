package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/etcdsync/etcdsync/supervisor"
)

// This file holds what the node's and node migrate's command lines share:
// the flag groups both declare (a TLS client, an etcd login, the process's
// HTTP server and logs), and the parsing and checks behind them.

// flagError is a bad command line; Flag names the culprit ("--prefix").
type flagError struct {
	Flag string
	Err  error
}

func (e *flagError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *flagError) Unwrap() error { return e.Err }

func badFlag(name, format string, args ...any) error {
	return &flagError{Flag: "--" + name, Err: fmt.Errorf(format, args...)}
}

var flagInError = regexp.MustCompile(` -{1,2}([A-Za-z0-9][A-Za-z0-9_.-]*)(:|$)`)

// parseCommandLine parses args into fs. -h/--help is flag.ErrHelp, usage
// having written the help to usageOut; a bad flag is a *flagError naming it.
func parseCommandLine(fs *flag.FlagSet, args []string, usageOut io.Writer, usage func(io.Writer, *flag.FlagSet)) error {
	// Package flag would print the whole usage after every mistake,
	// burying the one line that matters: the caller reports errors.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		usage(usageOut, fs)
		return err
	}
	// Package flag's messages name the flag with a single dash:
	// "invalid value "x" for flag -cluster-id-poll-interval: ...",
	// "flag provided but not defined: -bogus".
	name := "command line"
	if m := flagInError.FindStringSubmatch(err.Error()); m != nil {
		name = "--" + m[1]
	}
	return &flagError{Flag: name, Err: err}
}

// flagsSet refuses arguments that are not flags, and returns the names of
// the flags the command line set.
func flagsSet(fs *flag.FlagSet) (map[string]bool, error) {
	if fs.NArg() > 0 {
		return nil, &flagError{Flag: "command line", Err: fmt.Errorf("unexpected argument %q (every setting is a --flag)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// printFlags lists fs's flags, with their usage and defaults: like
// flag.PrintDefaults, but with the double dashes the docs use.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n    \t%s", f.Name, typ, strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch {
		case f.DefValue == "":
		case typ == "string":
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// refuseSet returns a *flagError, saying why, for the first of names that
// is set.
func refuseSet(set map[string]bool, why string, names ...string) error {
	for _, name := range names {
		if set[name] {
			return badFlag(name, "%s", why)
		}
	}
	return nil
}

// bothOrNeither returns a *flagError naming the missing one of two flags
// that only go together (a certificate and its key).
func bothOrNeither(aFlag, a, bFlag, b string) error {
	switch {
	case a == "" && b != "":
		return badFlag(aFlag, "missing: --%s needs it", bFlag)
	case a != "" && b == "":
		return badFlag(bFlag, "missing: --%s needs it", aFlag)
	}
	return nil
}

// positive is a numeric flag that must be above zero.
type positive struct {
	name string
	ok   bool // the value is above zero
	v    any
}

// checkPositive returns a *flagError for the first flag that is not.
func checkPositive(flags ...positive) error {
	for _, p := range flags {
		if !p.ok {
			return badFlag(p.name, "%v must be positive", p.v)
		}
	}
	return nil
}

// urlList reads the comma-separated URLs of flag name, or, if the flag is
// not set, of environment variable env, and returns them with how to name
// their source in errors ("--etcd-endpoints (from $ENV)").
func urlList(name, env, flagValue string, set map[string]bool, getenv func(string) string) ([]string, string, error) {
	list, source := flagValue, name
	if !set[name] {
		list, source = getenv(env), name+" (from $"+env+")"
	}
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if err := supervisor.ValidateEndpoint(u); err != nil {
			return nil, source, badFlag(source, "%w", err)
		}
		urls = append(urls, u)
	}
	return urls, source, nil
}

// checkHostPort checks that the flag's value is a host:port with a numeric
// port; 0 (any free port) only if allowZero.
func checkHostPort(name, v string, allowZero bool) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return badFlag(name, "%q is not host:port: %w", v, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return badFlag(name, "%q: port %q is not a number from 0 to 65535", v, port)
	}
	if p == 0 && !allowZero {
		return badFlag(name, "%q: port 0 is not allowed here; name a port", v)
	}
	return nil
}

// checkPrefix checks --prefix: a directory below the root.
func checkPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, "/") || strings.Trim(prefix, "/") == "" {
		return badFlag("prefix", "%q must be a directory path starting with /, e.g. /calico/v1", prefix)
	}
	return nil
}

// tlsFlags are one TLS client's flags, --NAME-ca-file, --NAME-cert-file and
// --NAME-key-file: the CA bundle that verifies its servers, and its own
// certificate.
type tlsFlags struct {
	name                      string // NAME: "etcd", "relay", "to"
	CAFile, CertFile, KeyFile string
}

// declare declares the flags into fs; servers and client complete their
// usage ("PEM CA bundle to verify "+servers).
func (t *tlsFlags) declare(fs *flag.FlagSet, name, servers, client string) {
	t.name = name
	fs.StringVar(&t.CAFile, name+"-ca-file", "", "PEM CA bundle to verify "+servers)
	fs.StringVar(&t.CertFile, name+"-cert-file", "", "PEM client certificate for "+client+" (with --"+name+"-key-file)")
	fs.StringVar(&t.KeyFile, name+"-key-file", "", "PEM client key for "+client+" (with --"+name+"-cert-file)")
}

// flags names the flags, for refuseSet.
func (t tlsFlags) flags() []string {
	return []string{t.name + "-ca-file", t.name + "-cert-file", t.name + "-key-file"}
}

// check refuses a certificate without its key, or a key without its
// certificate.
func (t tlsFlags) check() error {
	return bothOrNeither(t.name+"-cert-file", t.CertFile, t.name+"-key-file", t.KeyFile)
}

// on reports whether the client uses TLS of its own (for logs; an https
// URL uses TLS without it).
func (t tlsFlags) on() bool { return t.CAFile != "" || t.CertFile != "" }

// load reads the files (nil if none is named); errors name the flags.
func (t tlsFlags) load() (*tls.Config, error) {
	return clientTLS(t.name+"-ca-file", t.CAFile, t.name+"-cert-file", t.CertFile, t.KeyFile)
}

// login is an etcd user, --NAME-username, whose password comes from an
// environment variable only: a flag would show in ps and in shell history.
type login struct {
	flag, env          string
	Username, Password string
}

// declare declares the user flag into fs, with usage what+"; the password
// is read from env ...".
func (l *login) declare(fs *flag.FlagSet, flagName, env, what string) {
	l.flag, l.env = flagName, env
	fs.StringVar(&l.Username, flagName, "", what+"; the password is read from env "+env+" only")
}

// read takes the password from the environment.
func (l *login) read(getenv func(string) string) { l.Password = getenv(l.env) }

// check refuses a password without a user.
func (l login) check() error {
	if l.Password != "" && l.Username == "" {
		return badFlag(l.flag, "missing: %s is set", l.env)
	}
	return nil
}

// processFlags are every command's: its HTTP server, how long each step of
// its shutdown may take, and its logs on stderr.
type processFlags struct {
	Listen          string // host:port of the HTTP server
	ShutdownTimeout time.Duration
	LogFormat       string // "text" or "json"
	LogLevel        slog.Level
}

// declare declares the flags into fs; paths are what the HTTP server
// serves, shutdown says what the timeout bounds, and *level receives
// --log-level for check.
func (p *processFlags) declare(fs *flag.FlagSet, paths, shutdown string, level *string) {
	fs.StringVar(&p.Listen, "listen", "127.0.0.1:9095", "host:port of the HTTP server ("+paths+")")
	fs.DurationVar(&p.ShutdownTimeout, "shutdown-timeout", 5*time.Second, shutdown)
	fs.StringVar(&p.LogFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(level, "log-level", "info", "log level: debug, info, warn or error")
}

// checkListen checks --listen.
func (p processFlags) checkListen() error { return checkHostPort("listen", p.Listen, true) }

// checkLogs checks --log-format and reads level, --log-level.
func (p *processFlags) checkLogs(level string) error {
	if p.LogFormat != "text" && p.LogFormat != "json" {
		return badFlag("log-format", "%q is neither text nor json", p.LogFormat)
	}
	var err error
	p.LogLevel, err = parseLogLevel(level)
	return err
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, badFlag("log-level", "%q is not one of debug, info, warn, error", s)
}
