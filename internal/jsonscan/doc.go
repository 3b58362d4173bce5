// Package jsonscan is the one JSON scanner under netpol-guard's hand-written decoders: the
// JSON Lines flow records (flows), the Hubble event lines (flows/hubble) and the Pods,
// NetworkPolicies and Namespaces of cluster files (cluster). Those decoders know the shape
// they read and walk it member by member with a Scanner, so that a value they do not keep
// is passed over by a byte scan, and nothing is allocated that the result does not hold.
//
// A Scanner reads by the grammar of RFC 8259 and reports what it cannot read as false; it
// builds no errors, since each decoder words its own (or hands the input to a slower,
// general decoder that does). Strings are read in one of two modes: as encoding/json reads
// them (escapes decoded, invalid UTF-8 replaced), or plain only (no escapes, valid UTF-8),
// for decoders that leave anything else to a general decoder.
//
// Beside the scanner are the two things those decoders read alike: RFC 3339 times
// (ParseTime) and repeated names, interned (Interner).
package jsonscan
