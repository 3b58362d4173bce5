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

// Ingest resolves a batch of records from one source and adds them to the cache together.
// Records without lastSeen are taken as seen at now. The source's contact time and its
// unresolved records are recorded for coverage. It returns how many records were accepted
// and how many could not be resolved.
func Ingest(c *Cache, r Resolver, source string, recs []Record, now time.Time) (accepted, unresolved int) {
	batch := make([]Observation, 0, len(recs))
	for _, rec := range recs {
		if rec.LastSeen.IsZero() {
			rec.LastSeen = now
		}
		if o, ok := r.Resolve(rec); ok {
			batch = append(batch, o)
		} else {
			unresolved++
		}
	}
	c.Add(batch...)
	c.Contact(source, now, unresolved)
	return len(batch), unresolved
}
