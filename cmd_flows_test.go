package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlowsImportOntoItsOwnInputKeepsTheRecords(t *testing.T) {
	in, err := os.ReadFile("examples/flows.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.jsonl")
	if err := os.WriteFile(path, in, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run("netpol-guard", []string{"flows", "import", "-o", path, path}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out, _ := os.ReadFile(path)
	if want := bytes.Count(in, []byte("\n")); bytes.Count(out, []byte("\n")) != want {
		t.Errorf("%s holds %d records after importing it onto itself, want %d; stderr %s", path, bytes.Count(out, []byte("\n")), want, stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left in the directory, want 1", len(entries))
	}
}

func TestFlowsImportOfBadInputLeavesTheOutputAlone(t *testing.T) {
	dir := t.TempDir()
	out, bad := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "bad.jsonl")
	os.WriteFile(out, []byte("kept\n"), 0o600)
	os.WriteFile(bad, []byte("{not json\n"), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run("netpol-guard", []string{"flows", "import", "-o", out, bad}, strings.NewReader(""), &stdout, &stderr); code == 0 {
		t.Fatal("bad input accepted")
	}
	if got, _ := os.ReadFile(out); string(got) != "kept\n" {
		t.Errorf("output after a failed import: %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files left in the directory, want 2", len(entries))
	}
}
