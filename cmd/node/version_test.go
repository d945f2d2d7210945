package main

import (
	"bytes"
	"errors"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/etcdsync/etcdsync", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-12-02T07:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := "node github.com/etcdsync/etcdsync v1.2.3 revision 0123abcd (modified) committed 2026-12-02T07:00:00Z go1.26.8"
	if got := formatVersion(info); got != want {
		t.Errorf("formatVersion = %q, want %q", got, want)
	}
	info.Settings = nil
	if got := formatVersion(info); !strings.Contains(got, "revision unknown") {
		t.Errorf("formatVersion without VCS settings = %q, want it to say the revision is unknown", got)
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--version"}, env(nil), &out)
	if !errors.Is(err, errVersion) {
		t.Fatalf("parseFlags(--version) = %v, want errVersion", err)
	}
	if !strings.HasPrefix(out.String(), "node ") {
		t.Errorf("--version printed %q", out.String())
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, env(nil), &stdout, &stderr); code != exitOK || stdout.Len() == 0 || stderr.Len() != 0 {
		t.Errorf("run(--version) = %d, stdout %q, stderr %q; want 0, the version, nothing", code, stdout.String(), stderr.String())
	}
}
