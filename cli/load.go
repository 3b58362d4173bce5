package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/netpol-guard/netpol-guard/cluster"
	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
)

// Exit codes shared by the offline commands.
const (
	ExitOK       = 0
	ExitCut      = 1 // check: the change would cut at least one flow
	ExitBadInput = 2
)

// Inputs names the files both commands read.
type Inputs struct {
	// Cluster is a file or directory of Kubernetes objects (Namespaces, Pods, Nodes,
	// NetworkPolicies), or "-" for standard input.
	Cluster string
	// Flows is a JSON Lines file of flow records, or "-" for standard input.
	Flows string
	// Stdin is read for "-"; os.Stdin when nil.
	Stdin io.Reader
}

// observed is a cluster and the flows seen in it, resolved to evaluator endpoints.
type observed struct {
	snapshot *cluster.Snapshot
	world    *evaluator.World
	records  []flows.Record
	flows    []evaluator.Flow
}

func (in Inputs) stdin() io.Reader {
	if in.Stdin != nil {
		return in.Stdin
	}
	return os.Stdin
}

func load(in Inputs) (*observed, error) {
	if in.Cluster == "" {
		return nil, errors.New("--cluster is required")
	}
	if in.Flows == "" {
		return nil, errors.New("--flows is required")
	}
	if in.Cluster == "-" && in.Flows == "-" {
		return nil, errors.New("--cluster and --flows cannot both read standard input")
	}
	var snap *cluster.Snapshot
	var err error
	if in.Cluster == "-" {
		snap, err = cluster.Decode(in.stdin(), "<stdin>")
	} else {
		snap, err = cluster.Load(in.Cluster)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cluster: %w", err)
	}
	res := cluster.NewResolver(snap)
	obs := &observed{snapshot: snap, world: res.World()}

	source, r := in.Flows, io.Reader(nil)
	if in.Flows == "-" {
		source, r = "<stdin>", in.stdin()
	} else {
		f, err := os.Open(in.Flows)
		if err != nil {
			return nil, fmt.Errorf("reading flows: %w", err)
		}
		defer f.Close()
		r = f
	}
	err = flows.Read(r, source, func(_ int, rec flows.Record) error {
		src, err := res.Endpoint(rec.Src)
		if err != nil {
			return fmt.Errorf("src: %w", err)
		}
		dst, err := res.Endpoint(rec.Dst)
		if err != nil {
			return fmt.Errorf("dst: %w", err)
		}
		obs.records = append(obs.records, rec)
		obs.flows = append(obs.flows, evaluator.Flow{Src: src, Dst: dst, Port: rec.Port, Protocol: protocolOf(rec)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading flows: %w", err)
	}
	return obs, nil
}
