package redact_test

import (
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/internal/redact"
)

func TestURLDropsThePasswordAndKeepsTheRest(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:secret@relay-a:9096":  "http://user:xxxxx@relay-a:9096",
		"https://relay-b:9096/":            "https://relay-b:9096/",
		"http://user@relay-c:9096":         "http://user@relay-c:9096",
		"http://user:sec%zzret@relay:9096": "(unparsable URL with userinfo)",
		"not a url %zz":                    "not a url %zz",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLsRedactsEach(t *testing.T) {
	got := strings.Join(redact.URLs([]string{"http://a:secret@x:1", "http://y:2"}), ",")
	if strings.Contains(got, "secret") || got != "http://a:xxxxx@x:1,http://y:2" {
		t.Errorf("URLs = %q", got)
	}
}
