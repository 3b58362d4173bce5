package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the shared Secret. tls.crt, tls.key and ca.crt are what a kubernetes.io/tls
// Secret written by cert-manager holds, so tools read ours the same way; ca.key is the CA's
// private key, which every replica needs to be able to rotate.
const (
	keyTLSCert = corev1.TLSCertKey              // serving certificate
	keyTLSKey  = corev1.TLSPrivateKeyKey        // its private key
	keyCACert  = corev1.ServiceAccountRootCAKey // the bundle: the current CA first, then earlier CAs not yet expired
	keyCAKey   = "ca.key"                       // the current CA's private key
)

// backdate is how far before "now" a new certificate starts to be valid, so that a peer
// whose clock is a little behind ours accepts it.
const backdate = time.Hour

// keyPair is a certificate with its private key, both parsed and PEM-encoded.
type keyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// fingerprint names a certificate in logs and maps: the hex SHA-256 of its DER.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// newCA generates a self-signed ECDSA P-256 CA valid from now (backdated) for validity.
func newCA(now time.Time, validity time.Duration) (*keyPair, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// A distinct subject per CA keeps the old and the new CA apart in a bundle.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("netpol-guard-ca@%d", now.Unix()), Organization: []string{"netpol-guard"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, nil)
}

// newServing generates an ECDSA P-256 serving certificate for dnsNames signed by ca, valid
// for validity but never beyond the CA.
func newServing(ca *keyPair, dnsNames []string, now time.Time, validity time.Duration) (*keyPair, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("no DNS names for the serving certificate")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if ca.Cert.NotAfter.Before(notAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dnsNames[min(2, len(dnsNames)-1)], Organization: []string{"netpol-guard"}},
		DNSNames:     slices.Clone(dnsNames),
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return sign(tmpl, ca)
}

// sign creates a key and a certificate from tmpl, signed by parent (self-signed if nil).
func sign(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	parentCert, parentKey := tmpl, crypto.Signer(key)
	if parent != nil {
		parentCert, parentKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate just signed: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	return &keyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}

// parseKeyPair parses a PEM certificate (the first one is the leaf) and its PEM private key,
// and checks that they belong together.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", pair.PrivateKey)
	}
	return &keyPair{Cert: leaf, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// parseCertificates returns the certificates in PEM data, skipping blocks that are not
// certificates or do not parse.
func parseCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func encodeCertificates(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// renewalTime is when a certificate is due for renewal: rotateBefore ahead of its expiry,
// but never before two thirds of its lifetime have passed, so a short-lived certificate is
// not renewed over and over.
func renewalTime(c *x509.Certificate, rotateBefore time.Duration) time.Time {
	lifetime := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Add(-min(rotateBefore, lifetime/3))
}

// signedBy reports whether c's signature was made by ca.
func signedBy(c, ca *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, ca.RawSubject) && c.CheckSignatureFrom(ca) == nil
}

// material is what the shared Secret holds, parsed.
type material struct {
	// CA signs serving certificates; nil when missing or unusable.
	CA *keyPair
	// Bundle is what clients trust (ca.crt, the caBundle): CA first, then earlier CAs
	// that have not expired, so certificates they signed still verify during a rotation.
	Bundle []*x509.Certificate
	// Serving is the serving certificate and key; nil when missing or unusable.
	Serving *keyPair
}

// materialFromSecret parses a Secret's data leniently: a part that is missing or does not
// parse is left nil, and the plan replaces it.
func materialFromSecret(data map[string][]byte) material {
	var m material
	for _, c := range parseCertificates(data[keyCACert]) {
		if c.IsCA && c.BasicConstraintsValid {
			m.Bundle = append(m.Bundle, c)
		}
	}
	if len(m.Bundle) > 0 && len(data[keyCAKey]) > 0 {
		if ca, err := parseKeyPair(encodeCertificates(m.Bundle[:1]), data[keyCAKey]); err == nil {
			m.CA = ca
		}
	}
	if s, err := parseKeyPair(data[keyTLSCert], data[keyTLSKey]); err == nil {
		m.Serving = s
	}
	return m
}

// secretData is the Secret data for m, which must be complete.
func (m material) secretData() map[string][]byte {
	return map[string][]byte{
		keyTLSCert: m.Serving.CertPEM,
		keyTLSKey:  m.Serving.KeyPEM,
		keyCACert:  m.bundlePEM(),
		keyCAKey:   m.CA.KeyPEM,
	}
}

func (m material) bundlePEM() []byte { return encodeCertificates(m.Bundle) }

// policy is what the serving certificate must satisfy.
type policy struct {
	DNSNames     []string
	CAValidity   time.Duration
	CertValidity time.Duration
	RotateBefore time.Duration
}

// decision is the outcome of plan.
type decision struct {
	// Next is the material to store and serve.
	Next material
	// Changed is set when Next differs from what was stored.
	Changed bool
	// Reasons say why, for the log.
	Reasons []string
	// Waiting is set when the serving certificate is due to move to a new CA that is not yet
	// published long enough; the current one, still valid, is kept meanwhile.
	Waiting bool
	// Renew is when Next is next due for renewal.
	Renew time.Time
}

// plan decides what the Secret should hold at now, given what it holds (cur). published
// reports whether a CA has been in every caBundle long enough for clients to trust it; a
// serving certificate signed by a new CA is only issued once it is, unless nothing usable
// is being served anyway. A rotation therefore goes: new CA added to the bundle (old one
// kept) → bundle published → serving certificate switched → old CA dropped when it expires.
func (p policy) plan(cur material, now time.Time, published func(ca *x509.Certificate) bool) (decision, error) {
	d := decision{Next: material{CA: cur.CA, Serving: cur.Serving}}

	// The CA.
	switch {
	case cur.CA == nil:
		d.Reasons = append(d.Reasons, "CA missing or unusable")
	case !now.Before(renewalTime(cur.CA.Cert, p.RotateBefore)):
		d.Reasons = append(d.Reasons, "CA due for renewal")
	}
	if len(d.Reasons) > 0 {
		ca, err := newCA(now, p.CAValidity)
		if err != nil {
			return decision{}, err
		}
		d.Next.CA = ca
	}
	ca := d.Next.CA.Cert

	// The bundle: the CA first, then earlier CAs until they expire.
	d.Next.Bundle = []*x509.Certificate{ca}
	for _, c := range cur.Bundle {
		if now.Before(c.NotAfter) && !slices.ContainsFunc(d.Next.Bundle, func(b *x509.Certificate) bool { return b.Equal(c) }) {
			d.Next.Bundle = append(d.Next.Bundle, c)
		}
	}
	if !slices.EqualFunc(d.Next.Bundle, cur.Bundle, (*x509.Certificate).Equal) {
		d.Changed = true
	}

	// The serving certificate.
	problem := p.servingProblem(cur.Serving, d.Next.Bundle, now)
	switch {
	case problem != "":
	case !now.Before(renewalTime(cur.Serving.Cert, p.RotateBefore)):
		problem = "serving certificate due for renewal"
	case !signedBy(cur.Serving.Cert, ca):
		problem = "serving certificate signed by the previous CA"
	}
	if problem != "" {
		usable := p.servingProblem(cur.Serving, d.Next.Bundle, now) == ""
		if usable && !signedBy(cur.Serving.Cert, ca) && !published(ca) {
			// Clients may not trust the new CA yet: keep serving the old certificate,
			// which is still valid, until they do.
			d.Waiting = true
		} else {
			s, err := newServing(d.Next.CA, p.DNSNames, now, p.CertValidity)
			if err != nil {
				return decision{}, err
			}
			d.Next.Serving = s
			d.Reasons = append(d.Reasons, problem)
		}
	}
	if d.Next.Serving != cur.Serving || d.Next.CA != cur.CA {
		d.Changed = true
	}
	if d.Changed && len(d.Reasons) == 0 {
		d.Reasons = append(d.Reasons, "expired CA dropped from the bundle")
	}

	d.Renew = renewalTime(d.Next.CA.Cert, p.RotateBefore)
	if r := renewalTime(d.Next.Serving.Cert, p.RotateBefore); r.Before(d.Renew) {
		d.Renew = r
	}
	return d, nil
}

// servingProblem says why s cannot be served at now, or "" if it can.
func (p policy) servingProblem(s *keyPair, bundle []*x509.Certificate, now time.Time) string {
	switch {
	case s == nil:
		return "serving certificate missing or unusable"
	case !now.Before(s.Cert.NotAfter):
		return "serving certificate expired"
	case !sameNames(s.Cert.DNSNames, p.DNSNames):
		return "serving certificate DNS names differ"
	case !slices.ContainsFunc(bundle, func(ca *x509.Certificate) bool { return signedBy(s.Cert, ca) }):
		return "serving certificate not signed by a CA in the bundle"
	}
	return ""
}

func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
