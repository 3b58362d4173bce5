package server

import (
	"context"
	"sync"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/netpol-guard/netpol-guard/evaluator"
	"github.com/netpol-guard/netpol-guard/flows"
	"github.com/netpol-guard/netpol-guard/flows/antrea"
	"github.com/netpol-guard/netpol-guard/flows/goldmane"
)

// newGoldmaneSource follows Goldmane and feeds what it reports into the cache. Every flow
// whose verdict Calico's dataplane settled is also judged by the policies the view holds,
// and the two verdicts are compared in m.
func newGoldmaneSource(o GoldmaneOptions, cache *flows.Cache, v predictionView, m *goldmane.Metrics) (*goldmane.Client, error) {
	l := ctrl.Log.WithName("goldmane")
	p := &predictor{view: v}
	onVerdict := func(rec flows.Record, dataplaneAllowed bool) {
		predicted, ok := p.allowed(rec)
		if !ok {
			return
		}
		m.CompareVerdict(l, rec, dataplaneAllowed, predicted)
	}
	source := "goldmane/" + o.Address
	return goldmane.New(goldmane.Options{
		Address:  o.Address,
		TLS:      goldmane.TLSOptions{CAFiles: fileList(o.CAFile), CertFile: o.CertFile, KeyFile: o.KeyFile, ServerName: o.ServerName},
		Backfill: o.Backfill, OnVerdict: onVerdict, Metrics: m, Log: l,
	}, func(_ context.Context, recs []flows.Record) {
		flows.Ingest(cache, v, source, recs, time.Now())
	})
}

// newAntreaSource follows Antrea's Flow Aggregator and feeds what it reports into the cache.
func newAntreaSource(o AntreaOptions, cache *flows.Cache, r flows.Resolver) (*antrea.Client, error) {
	source := "antrea/" + o.Address
	return antrea.New(antrea.Options{
		Address: o.Address,
		TLS:     antrea.TLSOptions{CAFiles: fileList(o.CAFile), CertFile: o.CertFile, KeyFile: o.KeyFile, ServerName: o.ServerName},
		Log:     ctrl.Log.WithName("antrea"),
	}, func(_ context.Context, recs []flows.Record) {
		flows.Ingest(cache, r, source, recs, time.Now())
	})
}

func fileList(f string) []string {
	if f == "" {
		return nil
	}
	return []string{f}
}

// predictionView is what a prediction needs of the live view (*cluster.Live): the same
// resolution of a record into identities, and of identities into endpoints, that a pushed
// flow and an admission go through.
type predictionView interface {
	flows.Resolver
	Identify(rec flows.Record) (flows.Observation, error)
	Endpoint(id flows.PeerID, stored *flows.PeerInfo) *evaluator.Endpoint
	PolicySet() *evaluator.PolicySet
	World() *evaluator.World
}

// maxPredictionsPerEvaluation bounds what one Evaluation memoises: its memo is keyed by
// endpoint pointers, which the view replaces as labels change.
const maxPredictionsPerEvaluation = 1 << 16

// predictor says whether the policies the view holds allow a flow. It keeps one Evaluation
// while the policies and the cluster's namespaces and nodes stay the same (the view returns
// the same pointers until they change), so its memo of what the policies say about each
// endpoint is reused from flow to flow.
type predictor struct {
	view predictionView

	mu     sync.Mutex
	ps     *evaluator.PolicySet
	world  *evaluator.World
	eval   *evaluator.Evaluation
	judged int
}

// allowed predicts the flow's verdict; ok is false when the view cannot name its ends.
func (p *predictor) allowed(rec flows.Record) (allowed, ok bool) {
	o, err := p.view.Identify(rec)
	if err != nil {
		if l := log.V(levelDebug); l.Enabled() {
			l.Info("No prediction for a flow the view cannot resolve", "reason", err.Error())
		}
		return false, false
	}
	f := evaluator.Flow{Src: p.view.Endpoint(o.Src, o.SrcInfo), Dst: p.view.Endpoint(o.Dst, o.DstInfo), Port: o.Port, Protocol: o.Protocol}
	ps, w := p.view.PolicySet(), p.view.World()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eval == nil || ps != p.ps || w != p.world || p.judged >= maxPredictionsPerEvaluation {
		p.ps, p.world, p.eval, p.judged = ps, w, evaluator.NewEvaluation(ps, w), 0
	}
	p.judged++
	return p.eval.Allowed(f), true
}
