package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// Interner returns the same string for the same bytes, so that what one input decodes to
// shares its repeated names (namespaces, workloads, labels) instead of holding a copy of
// each. It holds at most the number of strings it was made for; past that, strings are
// allocated as they come, so that a stream of distinct names cannot grow it without end.
type Interner struct {
	strs map[string]string
	max  int
	// recent holds strings met more than once, found by a cheap hash before strs is
	// asked: most repeat, while names met once (pod names, addresses) make strs a large
	// table.
	recent [1 << recentBits]string
}

const recentBits = 10

// NewInterner returns an Interner that holds up to max strings.
func NewInterner(max int) *Interner {
	return &Interner{strs: make(map[string]string, min(max, 1024)), max: max}
}

// Intern returns b as a string, the same string for the same bytes.
func (in *Interner) Intern(b []byte) string {
	slot := &in.recent[recentSlot(b)]
	if *slot == string(b) {
		return *slot
	}
	if s, ok := in.strs[string(b)]; ok {
		*slot = s
		return s
	}
	s := string(b)
	if len(in.strs) < in.max {
		in.strs[s] = s
	}
	return s
}

// recentSlot places b in Interner.recent by a hash of its length and of its first and
// last eight bytes, which tell names apart nearly always; two that share them only take
// turns in the slot.
func recentSlot(b []byte) uint {
	h := uint64(len(b))
	if len(b) >= 8 {
		h ^= binary.LittleEndian.Uint64(b)*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[len(b)-8:]), 31)
	} else {
		for _, c := range b {
			h = h*31 + uint64(c)
		}
	}
	return uint((h * 0xbf58476d1ce4e5b9) >> (64 - recentBits))
}

// ParseTime parses the contents of a string that holds an RFC 3339 time, as
// time.Parse(time.RFC3339, …) parses it on its fast path, without allocating, and returns
// it in UTC; ok is false for anything else, which time.Parse must then judge.
func ParseTime(s []byte) (t time.Time, ok bool) {
	ok = true
	num := func(s []byte, lo, hi int) int {
		x := 0
		for _, c := range s {
			if c < '0' || '9' < c {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || hi < x {
			ok = false
			return lo
		}
		return x
	}
	if len(s) < len("2006-01-02T15:04:05") {
		return time.Time{}, false
	}
	year := num(s[0:4], 0, 9999)
	month := num(s[5:7], 1, 12)
	day := num(s[8:10], 1, daysIn(time.Month(month), year))
	hour := num(s[11:13], 0, 23)
	minute := num(s[14:16], 0, 59)
	sec := num(s[17:19], 0, 59)
	if !ok || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		n := 1
		for ; n < len(s) && '0' <= s[n] && s[n] <= '9'; n++ {
			if n <= 9 {
				nsec = nsec*10 + int(s[n]-'0')
			}
		}
		for k := n; k <= 9; k++ {
			nsec *= 10
		}
		s = s[n:]
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if len(s) == 1 && s[0] == 'Z' {
		return t, true
	}
	if len(s) != len("-07:00") {
		return time.Time{}, false
	}
	hr := num(s[1:3], 0, 23)
	mm := num(s[4:6], 0, 59)
	if !ok || (s[0] != '-' && s[0] != '+') || s[3] != ':' {
		return time.Time{}, false
	}
	offset := time.Duration(hr*60+mm) * time.Minute
	if s[0] == '-' {
		offset = -offset
	}
	return t.Add(-offset), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}
