package etcdv2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/etcdsync/etcdsync/messages"
)

// refDecode is the reference decodeNodes is held to: the same reading of
// etcd's answer, built on encoding/json's Decoder.Token, which checks the
// syntax and unquotes every string (escapes, surrogates, invalid UTF-8) as
// encoding/json does. A null where a known field's value belongs is that
// field absent; unknown fields are decoded whole and dropped.
func refDecode(body []byte) ([]messages.KV, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var kvs []messages.KV
	err := refObject(d, func(name string) error {
		if name == "node" {
			return refNode(d, &kvs)
		}
		return refSkip(d)
	})
	return kvs, err
}

func refObject(d *json.Decoder, field func(name string) error) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("want an object, got %v", tok)
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if err := field(tok.(string)); err != nil {
			return err
		}
	}
	_, err = d.Token() // '}', or the error that stopped More
	return err
}

func refSkip(d *json.Decoder) error {
	var v json.RawMessage
	return d.Decode(&v)
}

// refValue reads the next value whole, as a token or a raw message.
func refValue(d *json.Decoder) (any, error) {
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func refNode(d *json.Decoder, kvs *[]messages.KV) error {
	var kv messages.KV
	dir, isNull := false, false
	err := func() error {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if tok == nil { // a null node is none
			isNull = true
			return nil
		}
		if tok != json.Delim('{') {
			return fmt.Errorf("want a node object, got %v", tok)
		}
		for d.More() {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			switch name := tok.(string); name {
			case "key", "value":
				v, err := refValue(d)
				if err != nil {
					return err
				}
				switch v := v.(type) {
				case nil:
				case string:
					if name == "key" {
						kv.Key = v
					} else {
						kv.Value = v
					}
				default:
					return fmt.Errorf("%s is %T", name, v)
				}
			case "modifiedIndex":
				v, err := refValue(d)
				if err != nil {
					return err
				}
				switch v := v.(type) {
				case nil:
				case json.Number:
					n, err := strconv.ParseUint(string(v), 10, 64)
					if err != nil {
						return err
					}
					kv.ModifiedIndex = n
				default:
					return fmt.Errorf("modifiedIndex is %T", v)
				}
			case "dir":
				v, err := refValue(d)
				if err != nil {
					return err
				}
				switch v := v.(type) {
				case nil:
				case bool:
					dir = v
				default:
					return fmt.Errorf("dir is %T", v)
				}
			case "nodes":
				tok, err := d.Token()
				if err != nil {
					return err
				}
				if tok == nil {
					continue
				}
				if tok != json.Delim('[') {
					return fmt.Errorf("nodes is %v", tok)
				}
				for d.More() {
					if err := refNode(d, kvs); err != nil {
						return err
					}
				}
				if _, err := d.Token(); err != nil {
					return err
				}
			default:
				if err := refSkip(d); err != nil {
					return err
				}
			}
		}
		_, err = d.Token()
		return err
	}()
	if err != nil {
		return err
	}
	if !isNull && !dir {
		*kvs = append(*kvs, kv)
	}
	return nil
}

// chunked hands out its bytes at most n at a time, to put every byte of a
// body at the edge of the decoder's buffer in turn.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// decodeAll runs decodeNodes on body, read chunk bytes at a time.
func decodeAll(body []byte, chunk int) ([]messages.KV, error) {
	var kvs []messages.KV
	err := decodeNodes(&chunked{b: body, n: max(1, chunk)}, func(kv messages.KV) { kvs = append(kvs, kv) })
	return kvs, err
}

// differ checks decodeNodes against refDecode on body: both refuse it, or
// both accept it with the same keys, values and indexes in the same order.
func differ(t *testing.T, body []byte, chunk int) {
	t.Helper()
	want, wantErr := refDecode(body)
	got, err := decodeAll(body, chunk)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("body %q (chunks of %d):\ndecodeNodes error %v\nencoding/json error %v", trim(body), chunk, err, wantErr)
	}
	if err == nil && !slices.Equal(got, want) {
		t.Fatalf("body %q (chunks of %d):\ndecodeNodes %+v\nencoding/json %+v", trim(body), chunk, got, want)
	}
}

func trim(b []byte) []byte {
	if len(b) > 400 {
		return append(slices.Clone(b[:400]), "..."...)
	}
	return b
}

// etcdSeeds are answers as etcd writes them, and ones it never writes but
// a decoder must still read right or refuse.
var etcdSeeds = []string{
	`{"action":"get","node":{"key":"/calico/v1","dir":true,"nodes":[{"key":"/calico/v1/a","value":"{\"spec\":{\"x\":\"y\"}}","modifiedIndex":5,"createdIndex":5}],"modifiedIndex":4,"createdIndex":4}}` + "\n",
	`{"action":"get","node":{"key":"/p","dir":true,"nodes":[{"key":"/p/d","dir":true,"nodes":[{"key":"/p/d/k","value":"v","expiration":"2026-12-02T07:00:00.123456789Z","ttl":30,"modifiedIndex":9,"createdIndex":9}],"modifiedIndex":8,"createdIndex":8},{"key":"/p/empty","dir":true,"modifiedIndex":7,"createdIndex":7},{"key":"/p/e","value":"","modifiedIndex":6,"createdIndex":6}]}}`,
	`{"action":"get","node":{"key":"/p/leaf","value":"only","modifiedIndex":18446744073709551615,"createdIndex":1}}`,
	`{"node":{"key":"/p/\u00e9\u4e16\ud83d\ude00\/x","value":"\b\f\n\r\t\"\\\/\u0000\u001f\u007f"}}`,
	`{"node":{"key":"/p/lone","value":"\ud800 \udc00 \ud800\u0041 \ud800\ud800\udc00 \uDBFF\uDFFF \ud83d"}}`,
	"{\"node\":{\"key\":\"/p/raw\",\"value\":\"\xff\xfe a\xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf ok \xe2\x82\xac\"}}",
	`{"node":{"key":"/p/x","value":"v","unknown":{"a":[1,-2.5e+3,true,false,null,"s",{"b":{}}],"c":[]},"nodes":null,"dir":null,"modifiedIndex":null}}`,
	`{"nOde":{"key":"/p/case","value":"v"},"node":null}`,
	`{"node":{"\u006bey":"/p/escaped-name","value":"v","key":"/p/dup","value":null}}`,
	` 	{ "node" : { "key" : "/p/ws" , "dir" : false , "nodes" : [ ] } } trailing`,
	`{"node":{"key":"/p","dir":true,"nodes":[{"key":"/p/a"},null,{"key":"/p/b","dir":true,"nodes":[{"key":"/p/b/c","modifiedIndex":0}]}]}}`,
	// A leaf whose children decode their keys before it closes, and a
	// key after the children: each node keeps its own.
	`{"node":{"key":"/p/a","nodes":[{"key":"/q/b","value":"x"},{"nodes":[{"key":"/r/c/d"}],"key":"/s/c"}],"value":"y"}}`,
	`{"node":{"key":"/p/a","key":null,"nodes":[{"key":"/q/b"}],"key":"/p/z"}}`,
	`{"errorCode":100,"message":"Key not found","cause":"/x","index":12}`,
	`{}`,
	// Refused:
	``,
	`[]`,
	`{"node":{"key":"/p/a","value":"cut`,
	`{"node":{"key":"/p/a","value":"v","modifiedIndex":5}`,
	`{"node":{"key":"/p/a","value":"bad \x escape"}}`,
	`{"node":{"key":"/p/a","value":"single \' quote"}}`,
	`{"node":{"key":"/p/a","value":"short \u12 u"}}`,
	"{\"node\":{\"key\":\"/p/a\",\"value\":\"tab\tinside\"}}",
	`{"node":{"key":"/p/a","modifiedIndex":-1}}`,
	`{"node":{"key":"/p/a","modifiedIndex":1.0}}`,
	`{"node":{"key":"/p/a","modifiedIndex":1e3}}`,
	`{"node":{"key":"/p/a","modifiedIndex":18446744073709551616}}`,
	`{"node":{"key":"/p/a","modifiedIndex":01}}`,
	`{"node":{"key":"/p/a","modifiedIndex":"5"}}`,
	`{"node":{"key":5}}`,
	`{"node":{"key":"/p/a","dir":"true"}}`,
	`{"node":{"key":"/p/a","dir":tru}}`,
	`{"node":{"key":"/p/a","ttl":1.}}`,
	`{"node":{"key":"/p/a","ttl":-}}`,
	`{"node":{"key":"/p/a",}}`,
	`{"node":{"key":"/p/a"} "x":1}`,
	`{"node":{"key":"/p/a","nodes":[{"key":"/p/a/b"},]}}`,
	`{"node":{"key":"/p/a","nodes":{}}}`,
	`{"node":"string"}`,
	`{"node":[]}`,
	`{"node":{"key" "/p/a"}}`,
	`{"x":nul}`,
}

// FuzzDecodeNodes holds decodeNodes to refDecode on any body; `go test`
// runs the seeds, `go test -fuzz FuzzDecodeNodes ./internal/etcdv2` explores.
func FuzzDecodeNodes(f *testing.F) {
	for i, s := range etcdSeeds {
		f.Add([]byte(s), uint8(1+i%7))
		f.Add([]byte(s), uint8(255))
	}
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		differ(t, body, int(chunk))
	})
}

// FuzzDecodeNodesValues puts any key and value into an answer the way etcd
// encodes it (encoding/json, which escapes '"', '<', '>', '&', control
// characters and U+2028/9, and turns invalid UTF-8 into U+FFFD), and also
// with every character spelt as a \u escape; both must decode to what
// encoding/json reads, and the first to the value itself when it is valid
// UTF-8.
func FuzzDecodeNodesValues(f *testing.F) {
	f.Add("/calico/v1/host/h1/workload/k8s/ns%2fpod/endpoint/eth0", `{"spec":{"ipNetworks":["10.0.0.1/32"],"labels":{"a":"<b>&"}}}`, uint8(3))
	f.Add("/p/\u2028\u2029", "\x00\x1f\u00e9\U0001F600\xff", uint8(1))
	f.Add("/p/_hidden", strings.Repeat("\\\"", 100), uint8(200))
	f.Fuzz(func(t *testing.T, key, value string, chunk uint8) {
		node, err := json.Marshal(map[string]any{"key": key, "value": value, "modifiedIndex": 7, "createdIndex": 7, "ttl": 5})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"action":"get","node":{"key":"/","dir":true,"nodes":[` + string(node) + `]}}`)
		differ(t, body, int(chunk))
		if utf8.ValidString(key) && utf8.ValidString(value) {
			got, err := decodeAll(body, int(chunk))
			want := []messages.KV{{Key: key, Value: value, ModifiedIndex: 7}}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
			}
		}
		body = []byte(`{"node":{"key":` + uEscaped(key) + `,"value":` + uEscaped(value) + `,"modifiedIndex":7}}`)
		differ(t, body, int(chunk))
	})
}

// uEscaped quotes s with every byte that is not a letter spelt as \u
// escapes (UTF-16 pairs above the BMP), invalid UTF-8 left raw.
func uEscaped(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte(s[i])
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04X`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
