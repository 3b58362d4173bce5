package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/flowapi"
)

const flowsUsage = `Usage:
  netpol-guard flows export --server URL --token-file FILE [--ca-file FILE] [--namespace NS] [-o FILE]
  netpol-guard flows import [--format auto|flows|hubble] [-o FILE] FILE|-

export  streams the webhook's flow cache as flow records (JSON Lines), for
        'netpol-guard check --flows' in CI.
import  converts a flow file (hubble observe -o json, Hubble exporter files, or our
        own records) into flow records, checking every line.
`

func flowsCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, flowsUsage)
		return cli.ExitBadInput
	}
	switch args[0] {
	case "export":
		return flowsExport(args[1:], stdout, stderr)
	case "import":
		return flowsImport(args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "error: unknown flows command %q\n\n%s", args[0], flowsUsage)
	return cli.ExitBadInput
}

func flowsExport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("flows export", "netpol-guard flows export --server URL --token-file FILE [flags]\n\nStream the webhook's flow cache as flow records.", stderr)
	server := fs.String("server", "", "the webhook's base URL, e.g. https://netpol-guard.netpol-guard.svc:443 (required)")
	tokenFile := fs.String("token-file", "", "file holding a bearer token of a user allowed to read flows (required)")
	caFile := fs.String("ca-file", "", "CA bundle to verify the webhook's certificate; system roots when empty")
	namespace := fs.String("namespace", "", "export only flows into or out of this namespace")
	out := fs.String("o", "-", "output file, - for stdout")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if code, done := parse(fs, args); done {
		return code
	}
	if *server == "" || *tokenFile == "" {
		fmt.Fprintln(stderr, "error: --server and --token-file are required")
		return cli.ExitBadInput
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return cli.ExitBadInput
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "error: %s holds no PEM certificate\n", *caFile)
			return cli.ExitBadInput
		}
	}
	url := *server
	if *namespace != "" {
		url += "?namespace=" + *namespace
	}
	w, closeOut, err := output(*out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}}
	err = flowapi.Export(ctx, client, url, strings.TrimSpace(string(token)), w)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

func flowsImport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("flows import", "netpol-guard flows import [--format auto|flows|hubble] [-o FILE] FILE|-\n\nConvert a flow file into flow records (JSON Lines).", stderr)
	format := fs.String("format", cli.FormatAuto, "input format: auto, flows or hubble")
	out := fs.String("o", "-", "output file, - for stdout")
	if err := fs.Parse(args); err != nil {
		return cli.ExitBadInput
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "error: give one input file, or - for stdin")
		return cli.ExitBadInput
	}
	w, closeOut, err := output(*out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	n, err := cli.Import(fs.Arg(0), *format, stdin, w)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return cli.ExitBadInput
	}
	fmt.Fprintf(stderr, "%d flow records written\n", n)
	return 0
}

// output opens path for writing, or returns stdout for "-".
func output(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "-" || path == "" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}
