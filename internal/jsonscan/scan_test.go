package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

var values = []string{
	`{}`, `[]`, `{"a":1}`, ` { "a" : [ 1 , -2.5e+3 , true , false , null , "x" ] } `, `[{"a":{"b":[]}},[],{}]`,
	`"plain"`, `"esc\"aped\\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 \ud800"`, `"ünïcödé and more than eight bytes"`,
	"\"bad \xff byte\"", "\"control \x01\"", `"bad \x escape"`, `"bad \u12 escape"`, `"unterminated`,
	`{"a":1,}`, `[1,]`, `{,}`, `[,1]`, `{"a" 1}`, `{"a":}`, `{1:2}`, `[1 2]`, `{"a":1`, `[`, `{`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `1E-7`, `123456789012345678901234567890`,
	`tru`, `nul`, `falsey`, `nullx`, `1x`, `{}}`, `[]]`, ``, ` `,
}

// FuzzSkipMatchesValid checks that Skip takes a whole input for a value exactly when
// encoding/json takes it for valid, and, in plain mode, only where no string holds an
// escape or invalid UTF-8.
func FuzzSkipMatchesValid(f *testing.F) {
	for _, v := range values {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := Scanner{S: []byte(in), Unescape: true}
		got := s.Skip(10000) && s.AtEnd()
		if want := json.Valid([]byte(in)); got != want {
			t.Fatalf("Skip(%q) = %v, json.Valid = %v", in, got, want)
		}
		plain := Scanner{S: []byte(in)}
		if plain.Skip(10000) && plain.AtEnd() && (!got || strings.Contains(in, `\`) || !utf8.ValidString(in)) {
			t.Fatalf("plain Skip took %q", in)
		}
	})
}

// FuzzStringMatchesUnmarshal checks that String reads a string as encoding/json does.
func FuzzStringMatchesUnmarshal(f *testing.F) {
	for _, v := range values {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := Scanner{S: []byte(in), Unescape: true}
		b, ok := s.String()
		ok = ok && s.AtEnd()
		var want string
		err := json.Unmarshal([]byte(in), &want)
		if isString := err == nil && strings.HasPrefix(strings.TrimLeft(in, " \t\r\n"), `"`); ok != isString || ok && string(b) != want {
			t.Fatalf("String(%q) = %q, %v; json.Unmarshal: %q, %v", in, b, ok, want, err)
		}
	})
}

func TestNumber(t *testing.T) {
	tests := []struct {
		in            string
		num           string
		integer, ok   bool
		i64           int64
		intOK, uintOK bool
	}{
		{in: "0", num: "0", integer: true, ok: true, intOK: true, uintOK: true},
		{in: "-0", num: "-0", integer: true, ok: true, intOK: true},
		{in: "01", num: "0", integer: true, ok: true, intOK: true, uintOK: true},
		{in: "-2147483648", num: "-2147483648", integer: true, ok: true, i64: -2147483648, intOK: true},
		{in: "2147483648", num: "2147483648", integer: true, ok: true, intOK: false, uintOK: true},
		{in: "1.5", num: "1.5", ok: true},
		{in: "1e3", num: "1e3", ok: true},
		{in: "-", ok: false},
		{in: "1.", ok: false},
		{in: "x", ok: false},
	}
	for _, tt := range tests {
		s := Scanner{S: []byte(tt.in)}
		num, integer, ok := s.Number()
		if string(num) != tt.num || integer != tt.integer || ok != tt.ok {
			t.Errorf("Number(%q) = %q, %v, %v; want %q, %v, %v", tt.in, num, integer, ok, tt.num, tt.integer, tt.ok)
		}
		s = Scanner{S: []byte(tt.in)}
		if n, ok := s.Int(32); ok != tt.intOK || ok && n != tt.i64 {
			t.Errorf("Int(%q, 32) = %d, %v; want %d, %v", tt.in, n, ok, tt.i64, tt.intOK)
		}
		s = Scanner{S: []byte(tt.in)}
		if _, ok := s.Uint(32); ok != tt.uintOK {
			t.Errorf("Uint(%q, 32) ok = %v; want %v", tt.in, ok, tt.uintOK)
		}
	}
	if _, ok := Digits([]byte("18446744073709551615")); !ok {
		t.Error("Digits: the largest uint64 does not fit")
	}
	if _, ok := Digits([]byte("18446744073709551616")); ok {
		t.Error("Digits: one past the largest uint64 fits")
	}
}

func TestEndOfCheckedValues(t *testing.T) {
	for _, v := range []string{`{"a":"}\"]","b":[1,{"c":null}]}`, `[        1,          2]`, `"x\\"`, `-1.5e3`, `true`} {
		in := []byte(v + `,"next"`)
		if end := End(in, 0); end != len(v) {
			t.Errorf("End(%s) = %d, want %d", v, end, len(v))
		}
	}
	if !bytes.Equal([]byte(" x"), []byte(" x")[SkipSpace([]byte(" x"), 0)-1:]) {
		t.Error("SkipSpace")
	}
}

// FuzzParseTimeMatchesTimeParse checks that what ParseTime parses, time.Parse parses to the
// same instant.
func FuzzParseTimeMatchesTimeParse(f *testing.F) {
	for _, s := range []string{"2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123456789Z", "2024-02-29T23:59:59+02:00",
		"2023-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "2026-11-20T10:00:00.1234567891234-00:30", "2026-11-20t10:00:00z",
		"2026-11-20T24:00:00Z", "2026-11-20T10:00:60Z", "2026-11-20T10:00:00.Z", "2026-11-20T10:00:00+24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseTime([]byte(s))
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339, s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) = %v; time.Parse: %v, %v", s, got, want, err)
		}
	})
}

func TestInternerGivesOneStringForEqualBytes(t *testing.T) {
	in := NewInterner(2)
	a, b := in.Intern([]byte("team-001")), in.Intern([]byte("team-001"))
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("two strings for the same bytes")
	}
	in.Intern([]byte("x"))
	if c, d := in.Intern([]byte("over the bound")), in.Intern([]byte("over the bound")); c != d || len(in.strs) != 2 {
		t.Errorf("past its bound: %q, %q, %d strings held", c, d, len(in.strs))
	}
}

// FuzzMemberLikeIsMember checks that MemberLike reads what Member reads, whatever it guesses.
func FuzzMemberLikeIsMember(f *testing.F) {
	for _, v := range []string{`{"a":1,"b":2}`, `{ "a" : 1 , "b" : 2 }`, `{"":1,"a":2}`, `{"a":}`, `{"a":1,}`, `{"a"`, `{"a":`, `{"a": `, `{}`, `{"a\"":1}`} {
		for _, guess := range []string{"a", "b", "", `a\`} {
			f.Add(v, guess)
		}
	}
	f.Fuzz(func(t *testing.T, in, guess string) {
		// A guess is a plain string, as Member returns them.
		if g := (Scanner{S: []byte(`"` + guess + `"`)}); !utf8.ValidString(guess) || strings.ContainsAny(guess, "\"\\") {
			return
		} else if b, ok := g.String(); !ok || string(b) != guess {
			return
		}
		s, like := Scanner{S: []byte(in)}, Scanner{S: []byte(in)}
		if !s.Eat('{') || !like.Eat('{') {
			return
		}
		for n := 0; n < 8; n++ {
			key, more, ok := s.Member(n)
			likeKey, guessed, likeMore, likeOK := like.MemberLike(n, guess)
			if string(key) != string(likeKey) || more != likeMore || ok != likeOK || ok && s.I != like.I || guessed && string(key) != guess {
				t.Fatalf("member %d of %q: Member %q, %v, %v at %d; MemberLike(%q) %q, %v, %v, %v at %d",
					n, in, key, more, ok, s.I, guess, likeKey, guessed, likeMore, likeOK, like.I)
			}
			if !ok || !more || !s.Skip(64) || !like.Skip(64) {
				return
			}
		}
	})
}

// FuzzUintMatchesNumber checks Uint against what Number and Digits make of the same input.
func FuzzUintMatchesNumber(f *testing.F) {
	for _, seed := range []string{"0", "7", "65535", "65536", "4294967296", "9999999999999999999",
		"18446744073709551615", "18446744073709551616", "123456789012345678901", "12.5", "12e3",
		"-1", "01", "12x", " 42 ", "4294967295,", ""} {
		f.Add(seed, uint8(32))
	}
	f.Fuzz(func(t *testing.T, in string, bits uint8) {
		bits = bits%64 + 1
		s := Scanner{S: []byte(in)}
		got, gotOK := s.Uint(int(bits))
		ref := Scanner{S: []byte(in)}
		num, integer, ok := ref.Number()
		want, fits := uint64(0), false
		if ok && integer && num[0] != '-' {
			want, fits = Digits(num)
			fits = fits && (bits == 64 || want < 1<<bits)
		}
		if gotOK != fits || fits && (got != want || s.I != ref.I) {
			t.Errorf("Uint(%q, %d) = %d, %v at %d; Number and Digits give %d, %v at %d", in, bits, got, gotOK, s.I, want, fits, ref.I)
		}
	})
}
