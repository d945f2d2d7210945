package etcdv2

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/etcdsync/etcdsync/messages"
)

func TestDecodeNodesReadsWhatEtcdSends(t *testing.T) {
	body := `{"action":"get","node":{"key":"/p","dir":true,"nodes":[` +
		`{"key":"/p/d","dir":true,"nodes":[{"key":"/p/d/a b%2f\u00e9\ud83d\ude00","value":"{\"x\":\"\\\/\u2028\"}","expiration":"2026-12-02T07:00:00Z","ttl":30,"modifiedIndex":9,"createdIndex":8}],"modifiedIndex":8,"createdIndex":8},` +
		`{"key":"/p/emptydir","dir":true,"modifiedIndex":7,"createdIndex":7},` +
		`{"key":"/p/empty","value":"","modifiedIndex":6,"createdIndex":6}],"modifiedIndex":2,"createdIndex":2}}` + "\n"
	want := []messages.KV{
		{Key: "/p/d/a b%2fé😀", Value: "{\"x\":\"\\/\u2028\"}", ModifiedIndex: 9},
		{Key: "/p/empty", ModifiedIndex: 6},
	}
	for _, chunk := range []int{1, 2, 3, 5, 7, 64, 1 << 20} {
		got, err := decodeAll([]byte(body), chunk)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("chunks of %d: got %+v, %v; want %+v", chunk, got, err, want)
		}
		differ(t, []byte(body), chunk)
	}
}

func TestDecodeNodesReplacesInvalidUTF8AsEncodingJSONDoes(t *testing.T) {
	// Each byte that does not start a valid sequence becomes U+FFFD; a lone
	// surrogate escape too; a pair is one rune.
	body := "{\"node\":{\"key\":\"/p/\xff\",\"value\":\"a\xc3(\xed\xa0\x80\\ud800\\ud83d\\ude00\"}}"
	got, err := decodeAll([]byte(body), 3)
	want := []messages.KV{{Key: "/p/\uFFFD", Value: "a\uFFFD(\uFFFD\uFFFD\uFFFD\uFFFD😀"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	differ(t, []byte(body), 3)
}

func TestDecodeNodesTakesMegabyteValues(t *testing.T) {
	plainValue := strings.Repeat("0123456789abcdef", 1<<16)            // 1 MiB, no escape
	quoted := strings.Repeat(`{"k":"v\u00e9"}`+"\n\t\u2028", 1<<20/20) // about 1 MiB, escapes all along
	var nodes []map[string]any
	for i, v := range []string{plainValue, quoted, plainValue + quoted} {
		nodes = append(nodes, map[string]any{"key": "/p/k" + string(rune('0'+i)), "value": v, "modifiedIndex": i + 1})
	}
	node, err := json.Marshal(map[string]any{"key": "/p", "dir": true, "nodes": nodes})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"action":"get","node":` + string(node) + `}`)
	for _, chunk := range []int{4093, 1 << 20} {
		got, err := decodeAll(body, chunk)
		if err != nil || len(got) != 3 || got[0].Value != plainValue || got[1].Value != quoted || got[2].Value != plainValue+quoted {
			t.Fatalf("chunks of %d: %d keys, %v", chunk, len(got), err)
		}
		differ(t, body, chunk)
	}
}

func TestDecodeNodesRefusesABodyCutShort(t *testing.T) {
	body := []byte(`{"action":"get","node":{"key":"/p","dir":true,"nodes":[{"key":"/p/a","value":"1","modifiedIndex":5},{"key":"/p/b","value":"2","modifiedIndex":6}]}}`)
	for n := range len(body) {
		got, err := decodeAll(body[:n], 7)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: err %v, want io.ErrUnexpectedEOF", n, err)
		}
		if len(got) > 2 {
			t.Fatalf("cut at %d: %d keys", n, len(got))
		}
	}
	if _, err := decodeAll(body, 7); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeNodesReportsTheReadersError(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(`{"node":{"key":"/p/a","va`), &failing{broken})
	err := decodeNodes(r, func(messages.KV) {})
	if !errors.Is(err, broken) {
		t.Fatalf("err %v, want %v", err, broken)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

func TestDecodeNodesRefusesDeepNesting(t *testing.T) {
	body := `{"x":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`
	if _, err := decodeAll([]byte(body), 1<<20); !errors.Is(err, errSyntax) {
		t.Fatalf("err %v, want errSyntax", err)
	}
}
