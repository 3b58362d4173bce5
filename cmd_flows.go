package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/netpol-guard/netpol-guard/cli"
	"github.com/netpol-guard/netpol-guard/flowapi"
)

// Where `flows export` finds the webhook through the API server by default: the chart's
// namespace, Service and port name.
const (
	defaultGuardNamespace = "netpol-guard"
	defaultService        = "netpol-guard"
	defaultServicePort    = "https"
)

func newFlowsCommand(stdin io.Reader) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Export the webhook's flow cache; import Hubble and Goldmane flow files",
		Long: `export  streams the webhook's flow cache as flow records (JSON Lines), for
        'netpol-guard check --flows' in CI.
import  converts a flow file (hubble observe -o json, Hubble exporter files, Goldmane's
        JSON lines, or our own records) into flow records, checking every line.`,
		Example: `  netpol-guard flows export -n netpol-guard > flows.jsonl
  netpol-guard flows import examples/hubble-flows.json -o flows.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return exitCode(cli.ExitBadInput)
		},
	}
	cmd.AddCommand(newFlowsExportCommand(), newFlowsImportCommand(stdin))
	return cmd
}

// webhookFlags are how a command reaches the webhook's flow API: directly at --server
// with --token-file's token (verified with --ca-file), or, without --server, through the
// API server's Service proxy with kubectl's config flags.
type webhookFlags struct {
	kube        *genericclioptions.ConfigFlags
	server      string
	service     string
	servicePort string
	tokenFile   string
	caFile      string
	timeout     time.Duration
}

// newWebhookFlags returns the flags with kubectl's config flags, of which --server is the
// webhook's URL here, not the API server's.
func newWebhookFlags() webhookFlags {
	f := webhookFlags{kube: genericclioptions.NewConfigFlags(true)}
	f.kube.APIServer = nil
	return f
}

func (f *webhookFlags) addFlags(fs *pflag.FlagSet) {
	f.kube.AddFlags(fs)
	fs.StringVar(&f.server, "server", "", "the webhook's base URL, e.g. https://netpol-guard.netpol-guard.svc:443; empty: through the API server")
	fs.StringVar(&f.service, "service", defaultService, "the webhook's Service, reached through the API server")
	fs.StringVar(&f.servicePort, "service-port", defaultServicePort, "the Service's port, by name or number")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding a bearer token of a user allowed to read flows (required with --server; else default: the kubeconfig's token)")
	fs.StringVar(&f.caFile, "ca-file", "", "with --server, CA bundle to verify the webhook's certificate; system roots when empty")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
	_ = cobra.MarkFlagFilename(fs, "token-file")
	_ = cobra.MarkFlagFilename(fs, "ca-file")
}

// withTimeout bounds ctx, or a background context when the command runs without one, by
// --timeout.
func (f *webhookFlags) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, f.timeout)
}

// flowSource is the webhook's flow API, ready to export from.
type flowSource struct {
	client *http.Client
	base   string
	token  string
	export func(ctx context.Context, client *http.Client, base, token string, w io.Writer) error
}

// flowSource reads the token and builds the client: for --server, or through the Service
// proxy of the webhook in serviceNamespace. Its errors are bad input.
func (f *webhookFlags) flowSource(serviceNamespace string) (*flowSource, error) {
	var token string
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	if f.server != "" {
		if token == "" {
			return nil, errors.New("--server needs --token-file")
		}
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, err
			}
			tlsConfig.RootCAs = x509.NewCertPool()
			if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", f.caFile)
			}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}}
		return &flowSource{client: client, base: f.server, token: token, export: flowapi.Export}, nil
	}
	cfg, err := f.kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if token == "" {
		if token, err = bearerToken(cfg); err != nil {
			return nil, err
		}
	}
	if token == "" {
		return nil, errors.New("the kubeconfig's user has no bearer token to show the webhook: give --token-file (a token of one of the webhook's flow readers)")
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	if serviceNamespace == "" {
		serviceNamespace = defaultGuardNamespace
	}
	base := strings.TrimSuffix(cfg.Host, "/") + "/api/v1/namespaces/" + url.PathEscape(serviceNamespace) +
		"/services/" + url.PathEscape("https:"+f.service+":"+f.servicePort) + "/proxy"
	return &flowSource{client: client, base: base, token: token, export: flowapi.ExportThroughProxy}, nil
}

// exportTo copies the webhook's flows to w: all of them, or with flowsNamespace those into
// or out of that namespace.
func (s *flowSource) exportTo(ctx context.Context, flowsNamespace string, w io.Writer) error {
	base := s.base
	if flowsNamespace != "" {
		base += "?namespace=" + url.QueryEscape(flowsNamespace)
	}
	return s.export(ctx, s.client, base, s.token, w)
}

type exportFlags struct {
	webhookFlags
	flowsNamespace string
	out            string
}

func newFlowsExportCommand() *cobra.Command {
	f := exportFlags{webhookFlags: newWebhookFlags()}
	cmd := &cobra.Command{
		Use:   "export [-n NS] [--service NAME] [--token-file FILE] [--flows-namespace NS] [-o FILE]",
		Short: "Stream the webhook's flow cache as flow records",
		Long: `Stream the webhook's flow cache as flow records (JSON Lines).

Without --server the webhook is reached through the API server's Service proxy
(/api/v1/namespaces/NS/services/https:SERVICE:PORT/proxy/v1/flows) with the kubeconfig's
credentials. The API server does not pass those on to the webhook, which authorises by
bearer token (a TokenReview; the token's user must be one of its --flow-readers; writers
do not read): the token of --token-file, else the kubeconfig's own bearer token, is
sent in the X-Netpol-Guard-Authorization header. Reaching the proxy needs RBAC
"get" on services/proxy in the namespace.

With --server the webhook is called directly, with --token-file's token.`,
		Example: `  # Through the API server, as the current kubeconfig user
  netpol-guard flows export -n netpol-guard > flows.jsonl

  # Through the API server with a ServiceAccount's token for the webhook
  netpol-guard flows export -n netpol-guard --token-file token --flows-namespace shop -o shop.jsonl

  # Directly, from inside the cluster
  netpol-guard flows export --server https://netpol-guard.netpol-guard.svc:443 --token-file /var/run/secrets/kubernetes.io/serviceaccount/token --ca-file ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	f.addFlags(fs)
	fs.StringVar(&f.flowsNamespace, "flows-namespace", "", "export only flows into or out of this namespace")
	fs.StringVarP(&f.out, "output", "o", "-", "output file, - for stdout")
	fs.Lookup("namespace").Usage = "namespace of the webhook's Service (default " + defaultGuardNamespace + ")"
	return cmd
}

func (f *exportFlags) run(ctx context.Context, stdout, stderr io.Writer) error {
	bad := func(err error) error {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitCode(cli.ExitBadInput)
	}
	src, err := f.flowSource(*f.kube.Namespace)
	if err != nil {
		return bad(err)
	}
	w, closeOut, err := output(f.out, stdout)
	if err != nil {
		return bad(err)
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	err = src.exportTo(ctx, f.flowsNamespace, w)
	if cerr := closeOut(err); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitCode(1)
	}
	return nil
}

// bearerToken is the kubeconfig user's bearer token, if it has one.
func bearerToken(cfg *rest.Config) (string, error) {
	if cfg.BearerToken != "" {
		return cfg.BearerToken, nil
	}
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return "", fmt.Errorf("kubeconfig token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

func newFlowsImportCommand(stdin io.Reader) *cobra.Command {
	var format, out string
	cmd := &cobra.Command{
		Use:   "import [--format auto|flows|hubble|goldmane] [-o FILE] FILE|-",
		Short: "Convert a flow file into flow records (JSON Lines)",
		Example: `  # Hubble's JSON into flow records
  netpol-guard flows import examples/hubble-flows.json -o flows.jsonl

  # Straight from hubble observe
  hubble observe -o json --last 10000 | netpol-guard flows import -`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("give one input file, or - for stdin")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			w, closeOut, err := output(out, cmd.OutOrStdout())
			if err != nil {
				fmt.Fprintf(stderr, "error: %v\n", err)
				return exitCode(cli.ExitBadInput)
			}
			n, err := cli.Import(args[0], format, stdin, w)
			if cerr := closeOut(err); err == nil {
				err = cerr
			}
			if err != nil {
				fmt.Fprintf(stderr, "error: %v\n", err)
				return exitCode(cli.ExitBadInput)
			}
			fmt.Fprintf(stderr, "%d flow records written\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", cli.FormatAuto, "input format: auto, flows, hubble or goldmane")
	cmd.Flags().StringVarP(&out, "output", "o", "-", "output file, - for stdout")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{cli.FormatAuto, cli.FormatFlows, cli.FormatHubble, cli.FormatGoldmane}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// output opens path for writing, or returns stdout for "-". A file is written beside path
// under a temporary name and renamed over it by finish, only when the command succeeded
// (err nil): so `flows import -o X X` reads X whole before X is replaced, and a failed
// command leaves X as it was.
func output(path string, stdout io.Writer) (w io.Writer, finish func(err error) error, err error) {
	if path == "-" || path == "" {
		return stdout, func(error) error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, nil, err
	}
	return f, func(err error) error {
		defer os.Remove(f.Name()) // after a successful rename, there is nothing left to remove
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil // the command reports its own error
		}
		mode := os.FileMode(0o644) // os.Create's under the usual umask
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
		if err := os.Chmod(f.Name(), mode); err != nil {
			return err
		}
		return os.Rename(f.Name(), path)
	}, nil
}
