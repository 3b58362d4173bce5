package flows

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

// lineRecord is a record Read handed over, with its line.
type lineRecord struct {
	line int
	rec  Record
}

// readBoth reads data with Read and with the reference decoder and fails t on any
// difference: the records, their raw peers, the error message.
func readBoth(t *testing.T, data []byte) {
	t.Helper()
	var got, want []lineRecord
	gotErr := Read(bytes.NewReader(data), "fuzz", func(line int, rec Record) error {
		got = append(got, lineRecord{line, rec})
		return nil
	})
	wantErr := refRead(bytes.NewReader(data), "fuzz", func(line int, rec Record) error {
		want = append(want, lineRecord{line, rec})
		return nil
	})
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("error\n got: %v\nwant: %v", gotErr, wantErr)
	}
	if gotErr != nil && errors.Is(gotErr, ErrLineTooLong) != errors.Is(wantErr, ErrLineTooLong) {
		t.Fatalf("error %v: errors.Is(ErrLineTooLong) differs from the reference", gotErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records\n got: %+v\nwant: %+v", got, want)
	}
}

// trickyLines are lines where a hand-written decoder is easy to get wrong.
var trickyLines = []string{
	// Escapes and Unicode, in keys and values.
	`{"\u0073rc":{"ip":"10.0.0.3"},"dst":{"namespace":"sh\u006fp","pod":"c\/a"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"shop","workload":"Job/\ud83d\ude00 \ud83d x \udc00\u00e9\\\"\b\f\n\r\t"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"shop","workload":"Job/` + "\xff\xfe\xed\xa0\x80\xe2\x82" + `"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"shop","workload":"Job/` + "é✓😀" + `"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"shop","labels":{"a\u0062":"x","ab":"y"}},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"` + "\xff" + `":1}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"":1}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"protocol":"\u0074cp"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"protocol":"ſctp"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"x":"\'"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"x":"\u12"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"protocol":"` + "\t" + `"}`,
	// Duplicate keys, nulls.
	`{"src":null,"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4","ip":null},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"a","labels":{"k":"v","k":"w"}},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"a","labels":{"k":null}},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":null}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":null,"count":null,"protocol":null}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":true}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":{}}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"src":{"ip":"x"}}`,
	`{"src":[],"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"namespace":"a","labels":"x"},"port":80}`,
	// Numbers out of range or of the wrong form.
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":-0}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":065}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":6.5e1}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":1E2}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":-9223372036854775809}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":18446744073709551615}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":18446744073709551616}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":99999999999999999999}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":-99999999999999999999}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":-1e3}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":1.}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"count":-}`,
	// Times.
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2024-02-29T23:59:59.1234567891-23:59"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2023-02-29T00:00:00Z"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2026-11-20T10:00:00,5Z"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2026-11-20T24:00:00Z"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2026-11-20t10:00:00z"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"9999-12-31T23:59:59-00:01"}`,
	`{"src":{"ip":"10.0.0.3"},"dst":{"ip":"10.0.0.4"},"port":80,"lastSeen":"2026-11-20T10:00:00+24:00"}`,
	// Names and addresses.
	`{"src":{"namespace":"a.b","pod":"x"},"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"namespace":"` + strings.Repeat("a", 64) + `","pod":"x"},"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"namespace":"a","pod":"` + strings.Repeat("a.", 127) + `"},"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"namespace":"a","labels":{"example.com/":"x","/a":"y","a/b/c":"z","-a":"","a":"` + strings.Repeat("v", 64) + `"}},"dst":{"ip":"10.0.0.4"},"port":80}`,
	`{"src":{"ip":"::ffff:1.2.3.4"},"dst":{"ip":"0:0::1"},"port":80}`,
	// Not an object, trailing garbage, huge lines.
	`[1,2]`, `null`, `"x"`, `12`, `{}`, `{"src":{"ip":"1.1.1.1"}}}`, `{"src":{"ip":"1.1.1.1"}} x`, `{"src":{"ip":"1.1.1.1"},}`,
	`{"src" {"ip":"1.1.1.1"}}`, `{"src":{"ip":"1.1.1.1"} "dst":1}`, `{"src":tru}`, `{"x":[` + strings.Repeat("[", 10001) + `}`,
	"{\"src\":{\"ip\":\"1.1.1.1\"},\"dst\":{\"ip\":\"1.1.1.1\"},\"port\":80}\v",
	"{\"src\":{\"ip\":\"1.1.1.1\"},\"dst\":{\"ip\":\"1.1.1.1\"},\"port\":80}\u00a0",
	`{"src":{"ip":"1.1.1.1"},"dst":{"ip":"1.1.1.1"},"port":80,"x":"` + strings.Repeat("x", MaxLineBytes) + `"}`,
}

func TestReadMatchesReferenceOnTrickyLines(t *testing.T) {
	for _, line := range trickyLines {
		t.Run("", func(t *testing.T) { readBoth(t, []byte(cartLine+"\n"+line+"\n"+cartLine)) })
	}
}

func TestReadMatchesReferenceOnAGeneratedFile(t *testing.T) {
	readBoth(t, benchFlowsFile(2000))
}

// FuzzReadMatchesReference holds the decoder to the reference, the decoder it replaced:
// the same records with the same raw peers, or the same error.
func FuzzReadMatchesReference(f *testing.F) {
	for _, line := range trickyLines {
		f.Add([]byte(line))
	}
	f.Add([]byte(cartLine))
	f.Add(benchFlowsFile(20))
	f.Fuzz(func(t *testing.T, data []byte) { readBoth(t, data) })
}

// nameChecks pairs each hand-written check with the apimachinery function it stands for.
var nameChecks = []struct {
	name  string
	fast  func(string) bool
	slow  func(string) []string
	seeds []string
}{
	{"IsDNS1123Label", isDNS1123Label, content.IsDNS1123Label, []string{"a", "a-b", "-a", "a-", "A", "a.b", "", strings.Repeat("a", 63), strings.Repeat("a", 64), "1", "é"}},
	{"IsDNS1123Subdomain", isDNS1123Subdomain, content.IsDNS1123Subdomain, []string{"a.b", "a..b", ".a", "a.", "a-.b", strings.Repeat("a.", 126) + "a", strings.Repeat("a", 254), strings.Repeat("a", 100)}},
	{"IsLabelKey", isLabelKey, content.IsLabelKey, []string{"app", "app.kubernetes.io/name", "/a", "a/", "a/b/c", "A_b.C", "_a", "a_", "Ex.com/a", "a b", strings.Repeat("a", 64), "x/" + strings.Repeat("a", 63)}},
	{"IsLabelValue", isLabelValue, content.IsLabelValue, []string{"", "a", "a-", "A.b_c", strings.Repeat("v", 63), strings.Repeat("v", 64), "a/b", "é"}},
	{"canonical IPv4", isCanonicalIPv4, canonicalIPv4, []string{"10.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.", "::ffff:1.2.3.4", "1.2.3.4%eth0", " 1.2.3.4"}},
}

// canonicalIPv4 finds nothing wrong with s when netip reads it as an IPv4 address and
// writes it back as s.
func canonicalIPv4(s string) []string {
	if addr, err := netip.ParseAddr(s); err != nil || !addr.Is4() || addr.String() != s {
		return []string{"not a canonical IPv4 address"}
	}
	return nil
}

func TestNameChecksAgreeWithApimachinery(t *testing.T) {
	for _, c := range nameChecks {
		for _, s := range c.seeds {
			if got, want := c.fast(s), len(c.slow(s)) == 0; got != want {
				t.Errorf("%s(%q): hand-written says %v, apimachinery %v", c.name, s, got, want)
			}
		}
	}
}

func FuzzNameChecks(f *testing.F) {
	for _, c := range nameChecks {
		for _, s := range c.seeds {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range nameChecks {
			if got, want := c.fast(s), len(c.slow(s)) == 0; got != want {
				t.Errorf("%s(%q): hand-written says %v, apimachinery %v", c.name, s, got, want)
			}
		}
	})
}
