package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/messages"
)

// jsonLine is what encoding/json makes of an update line.
type jsonLine struct {
	Type     string  `json:"type"`
	Key      string  `json:"key"`
	Value    *string `json:"value,omitempty"`
	Revision uint64  `json:"revision"`
}

// encodingJSON returns encoding/json's line for v, HTML escaping off.
func encodingJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var awkwardStrings = []string{
	"", "hello", `{"json":"inside"}`, `back\slash`, "tab\there", "new\nline\r\n", "\x00\x01\x1f\x7f",
	"\b\f", "<html>&amp;</html>", "üñïçødé ✓ 𝄞", "\u2028\u2029", "bad utf8 \xff\xfe end", "\xc3", "trailing \\",
	strings.Repeat("x", 5000),
}

func TestAppendUpdateMatchesEncodingJSON(t *testing.T) {
	for _, typ := range []messages.UpdateType{messages.UpdateTypeNew, messages.UpdateTypeUpdated, messages.UpdateTypeDeleted} {
		for i, s := range awkwardStrings {
			u := messages.Update{Type: typ, Key: "/calico/v1/" + s, Value: s, Revision: uint64(i) * 1e15}
			want := jsonLine{Type: typ.String(), Key: u.Key, Revision: u.Revision}
			if typ != messages.UpdateTypeDeleted {
				want.Value = &u.Value
			}
			got := string(appendUpdate(nil, u))
			if w := encodingJSON(t, want); got != w {
				t.Errorf("appendUpdate(%v)\n got %q\nwant %q", u, got, w)
			}
		}
	}
}

func TestAppendUpdateShape(t *testing.T) {
	for _, tc := range []struct {
		u    messages.Update
		want string
	}{
		{messages.Update{Type: messages.UpdateTypeNew, Key: "/calico/v1/a", Value: "x", Revision: 12},
			`{"type":"new","key":"/calico/v1/a","value":"x","revision":12}` + "\n"},
		{messages.Update{Type: messages.UpdateTypeUpdated, Key: "/calico/v1/a", Value: "", Revision: 13},
			`{"type":"updated","key":"/calico/v1/a","value":"","revision":13}` + "\n"},
		{messages.Update{Type: messages.UpdateTypeDeleted, Key: "/calico/v1/a", Revision: 14},
			`{"type":"deleted","key":"/calico/v1/a","revision":14}` + "\n"},
	} {
		if got := string(appendUpdate(nil, tc.u)); got != tc.want {
			t.Errorf("appendUpdate(%v) = %q, want %q", tc.u, got, tc.want)
		}
	}
}

func TestAppendStatus(t *testing.T) {
	for _, s := range []messages.SyncStatus{messages.WaitForDatastore, messages.Resync, messages.InSync} {
		want := encodingJSON(t, map[string]string{"status": s.String()})
		if got := string(appendStatus(nil, s)); got != want {
			t.Errorf("appendStatus(%v) = %q, want %q", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(appendJSONString(nil, s)) + "\n"
		if want := encodingJSON(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %q, want %q", s, got, want)
		}
	})
}

func BenchmarkAppendUpdate(b *testing.B) {
	u := messages.Update{Type: messages.UpdateTypeNew, Key: "/calico/v1/host/node-0042/workload/k8s/pod-1/endpoint/eth0",
		Value: `{"state":"active","name":"cali1234","mac":"ee:ee:ee:ee:ee:ee","ipv4_nets":["10.65.0.2/32"]}`, Revision: 123456}
	var buf []byte
	for b.Loop() {
		buf = appendUpdate(buf[:0], u)
	}
}
