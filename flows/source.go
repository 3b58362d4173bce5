package flows

import "time"

// Resolver turns a flow record, as a source reports it (peers by IP, by pod, by workload),
// into cache identities, as they were when the flow was observed. ok is false when an end
// resolves to nothing known: such flows are counted as unresolved, never guessed.
type Resolver interface {
	Resolve(rec Record) (obs Observation, ok bool)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(Record) (Observation, bool)

// Resolve calls f.
func (f ResolverFunc) Resolve(rec Record) (Observation, bool) { return f(rec) }

// MaxClockSkew is how far past now a record's lastSeen may lie: Ingest clamps later times
// to now plus it. Expiry walks the cache from the edge touched longest ago and stops at the
// first one still inside the window, so one edge "seen" in year 9999 would otherwise keep
// every edge behind it forever.
const MaxClockSkew = time.Minute

// Ingest resolves a batch of records from one source and adds them to the cache together.
// It is the one way in for every source (the push API, Hubble, Goldmane, Antrea).
// Records without lastSeen are taken as seen at now; records seen later than now plus
// MaxClockSkew are taken as seen then, and counted (Coverage.Clamped). The source's contact
// time and its unresolved records are recorded for coverage. It returns how many records
// were accepted and how many could not be resolved.
func Ingest(c *Cache, r Resolver, source string, recs []Record, now time.Time) (accepted, unresolved int) {
	n := IngestChecked(c, r, source, recs, now, nil)
	return n.Accepted, n.Unresolved
}

// IngestCounts says what became of a batch of records.
type IngestCounts struct {
	// Accepted went into the cache; Unresolved named an end the resolver did not know;
	// Rejected resolved but were refused by the check.
	Accepted, Unresolved, Rejected int
}

// IngestChecked is Ingest with a check: each resolved record goes into the cache only if
// check, when not nil, accepts it (the push API binds a node agent to its node so).
func IngestChecked(c *Cache, r Resolver, source string, recs []Record, now time.Time, check func(Record, Observation) bool) IngestCounts {
	batch := make([]Observation, 0, len(recs))
	latest := now.Add(MaxClockSkew)
	var n IngestCounts
	clamped := 0
	for _, rec := range recs {
		switch {
		case rec.LastSeen.IsZero():
			rec.LastSeen = now
		case rec.LastSeen.After(latest):
			rec.LastSeen = latest
			clamped++
		}
		o, ok := r.Resolve(rec)
		switch {
		case !ok:
			n.Unresolved++
		case check != nil && !check(rec, o):
			n.Rejected++
		default:
			batch = append(batch, o)
		}
	}
	c.Add(batch...)
	c.contact(source, now, n.Unresolved, clamped)
	n.Accepted = len(batch)
	return n
}
