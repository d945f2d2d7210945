package main

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/etcdsync/etcdsync/messages"
)

// The JSON-lines output, one object per line:
//
//	{"type":"new","key":"/calico/v1/a","value":"x","revision":12}
//	{"type":"deleted","key":"/calico/v1/a","revision":13}
//	{"status":"in-sync"}
//
// With --model calicov1 an update also carries "typed":{"kind","key","value"}:
// the key's type and fields and the decoded value.
//
// A deletion has no "value" member; "new" and "updated" always have one,
// possibly "". The encoding is the one encoding/json produces for the same
// object with HTML escaping off (tests check it), written by hand because a
// snapshot of 100 000 keys is 100 000 lines: this takes about a third of
// json.Marshal's time per line and allocates nothing (BenchmarkAppendUpdate).

// appendUpdate appends u's JSON line, newline included, to b.
func appendUpdate(b []byte, u messages.Update) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, u.Type.String()...)
	b = append(b, `","key":`...)
	b = appendJSONString(b, u.Key)
	if u.Type != messages.UpdateTypeDeleted {
		b = append(b, `,"value":`...)
		b = appendJSONString(b, u.Value)
	}
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, u.Revision, 10)
	if u.DecodedKey != nil {
		// --model: the typed key and value, by encoding/json (off the raw
		// path, which stays allocation-free).
		typed, err := json.Marshal(typedOf(u))
		if err != nil {
			typed, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		b = append(b, `,"typed":`...)
		b = append(b, typed...)
	}
	return append(b, "}\n"...)
}

// appendStatus appends the JSON line of a status change to b.
func appendStatus(b []byte, s messages.SyncStatus) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, s.String()...)
	return append(b, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// plainASCII[c] is true for the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string, as encoding/json does without
// HTML escaping: invalid UTF-8 becomes U+FFFD, and U+2028 and U+2029 are
// escaped so that the line is also valid JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
