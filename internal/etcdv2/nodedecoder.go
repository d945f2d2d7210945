package etcdv2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/etcdsync/etcdsync/messages"
)

// decodeNodes reads one answer of etcd's v2 keys API from r, a JSON object
// whose "node" field is a node object ("key", "value", "modifiedIndex",
// "dir", "nodes" of node objects), and calls leaf for every node that is not
// a directory, in the order the answer lists them, as soon as the node's
// object closes. Every other field, at any level, is checked for syntax and
// skipped; a null where a known field's value belongs is that field absent.
// Nothing after the answer's closing brace is read.
//
// It decodes exactly what encoding/json's Decoder.Token does on the same
// bytes (the differential fuzz in nodedecoder_fuzz_test.go holds it to
// that): the same escapes (\u surrogate pairs included; a lone or broken
// surrogate becomes U+FFFD), each byte of invalid UTF-8 replaced by U+FFFD,
// control characters in strings, a quote escaped as \' and any syntax error
// refused. modifiedIndex must be a whole number that fits in a uint64. A
// body that ends before the answer closes is io.ErrUnexpectedEOF.
//
// It is a scanner written for this one shape, not a general JSON decoder:
// it allocates the key and value strings of each leaf and nothing else per
// node, and reads r in large blocks.
func decodeNodes(r io.Reader, leaf func(messages.KV)) error {
	d := nodeDecoder{r: r, buf: make([]byte, decodeBlock), leaf: leaf}
	return d.answer()
}

// decodeBlock is how much the decoder asks of the reader at a time.
const decodeBlock = 256 << 10

// maxDepth is how deeply values may nest, as encoding/json allows.
const maxDepth = 10000

// errSyntax is the error of a body that is not what etcd sends.
var errSyntax = errors.New("invalid JSON")

type nodeDecoder struct {
	r        io.Reader
	buf      []byte
	pos, end int   // buf[pos:end] is read and not yet decoded
	rerr     error // the reader's error, once it returned one
	scratch  []byte
	keys     [][]byte // per depth, the key of the node open there
	leaf     func(messages.KV)
	depth    int
	consumed int64 // bytes before buf[0], for error offsets
}

// plain marks the bytes that stand for themselves inside a JSON string
// and are valid UTF-8 on their own: printable ASCII but '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// fill makes at least n bytes available at buf[pos:], unless the reader
// ends first; it reports whether they are there.
func (d *nodeDecoder) fill(n int) bool {
	if d.end-d.pos >= n {
		return true
	}
	if d.rerr != nil {
		return false
	}
	if d.pos > 0 {
		d.consumed += int64(d.pos)
		d.end = copy(d.buf, d.buf[d.pos:d.end])
		d.pos = 0
	}
	for d.end < n {
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		if err != nil {
			d.rerr = err
			return d.end >= n
		}
	}
	return true
}

// fail returns the error for the byte at pos: the reader's own error if
// it broke off (io.ErrUnexpectedEOF for a clean end), else a syntax error.
func (d *nodeDecoder) fail(what string) error {
	if d.pos >= d.end {
		if d.rerr == nil || errors.Is(d.rerr, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return d.rerr
	}
	return fmt.Errorf("%w: %s at offset %d, found %q", errSyntax, what, d.consumed+int64(d.pos), d.buf[d.pos])
}

// peek skips whitespace and returns the next byte, or false at the end of
// the body.
func (d *nodeDecoder) peek() (byte, bool) {
	if p := d.pos; p < d.end { // etcd writes no whitespace
		if c := d.buf[p]; c > ' ' {
			return c, true
		}
	}
	return d.peekSlow()
}

func (d *nodeDecoder) peekSlow() (byte, bool) {
	for {
		for d.pos < d.end {
			switch c := d.buf[d.pos]; c {
			case ' ', '\t', '\n', '\r':
				d.pos++
			default:
				return c, true
			}
		}
		if !d.fill(1) {
			return 0, false
		}
	}
}

// expect consumes c, the next byte after whitespace.
func (d *nodeDecoder) expect(c byte, what string) error {
	if p := d.pos; p < d.end && d.buf[p] == c {
		d.pos++
		return nil
	}
	return d.expectSlow(c, what)
}

func (d *nodeDecoder) expectSlow(c byte, what string) error {
	if b, ok := d.peek(); !ok || b != c {
		return d.fail(what)
	}
	d.pos++
	return nil
}

// answer decodes the top-level object.
func (d *nodeDecoder) answer() error {
	return d.object("the answer", func(name []byte) error {
		if string(name) == "node" {
			return d.node()
		}
		return d.skip()
	})
}

// object decodes an object whose opening brace is next, calling field for
// each member with its unescaped name (valid until the next read: field must
// look at it first) when the decoder stands at the member's value.
func (d *nodeDecoder) object(what string, field func(name []byte) error) error {
	if c, ok := d.peek(); !ok || c != '{' {
		return d.fail("expected an object for " + what)
	}
	d.pos++
	if d.depth++; d.depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errSyntax, maxDepth)
	}
	defer func() { d.depth-- }()
	if c, ok := d.peek(); ok && c == '}' {
		d.pos++
		return nil
	}
	for {
		if err := d.expect('"', "expected a member name"); err != nil {
			return err
		}
		name, err := d.name()
		if err != nil {
			return err
		}
		if err := field(name); err != nil {
			return err
		}
		c, ok := d.peek()
		if !ok || (c != ',' && c != '}') {
			return d.fail("expected ',' or '}' after a member")
		}
		d.pos++
		if c == '}' {
			return nil
		}
	}
}

// name returns the unescaped name of the member whose opening quote has
// just been consumed, and consumes the ':' after it. The name is valid until
// the next read: each field function looks at it before reading anything.
func (d *nodeDecoder) name() ([]byte, error) {
	// etcd's names are plain and short: straight from the buffer, when
	// it holds the name and the colon right after.
	buf := d.buf[:d.end]
	i := d.pos
	for i < len(buf) && plain[buf[i]] {
		i++
	}
	if i+1 < len(buf) && buf[i] == '"' && buf[i+1] == ':' {
		name := buf[d.pos:i]
		d.pos = i + 2
		return name, nil
	}
	name, err := d.str(d.scratch[:0])
	d.scratch = name[:0]
	if err != nil {
		return nil, err
	}
	if err := d.expect(':', "expected ':' after a member name"); err != nil {
		return nil, err
	}
	return name, nil
}

// array decodes an array whose opening bracket is next, calling elem with
// the decoder at each element.
func (d *nodeDecoder) array(elem func() error) error {
	if err := d.expect('[', "expected an array"); err != nil {
		return err
	}
	if d.depth++; d.depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errSyntax, maxDepth)
	}
	defer func() { d.depth-- }()
	if c, ok := d.peek(); ok && c == ']' {
		d.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		c, ok := d.peek()
		if !ok || (c != ',' && c != ']') {
			return d.fail("expected ',' or ']' after an element")
		}
		d.pos++
		if c == ']' {
			return nil
		}
	}
}

// null consumes a null if one is next and reports whether it did.
func (d *nodeDecoder) null() (bool, error) {
	if c, ok := d.peek(); !ok || c != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// node decodes one node object (or null), calling leaf for it and every
// node below it.
func (d *nodeDecoder) node() error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	var kv messages.KV
	// The key is kept as bytes and made a string only for a leaf: most
	// nodes of a Calico tree are directories, whose keys nobody reads.
	// Each depth has a buffer of its own, as a node's children decode
	// theirs before it closes.
	lvl := d.depth
	for len(d.keys) <= lvl {
		d.keys = append(d.keys, nil)
	}
	key := d.keys[lvl][:0]
	dir := false
	err := d.object("a node", func(name []byte) error {
		switch string(name) {
		case "key":
			if isNull, err := d.null(); isNull || err != nil {
				return err
			}
			s, err := d.stringBytes()
			if err != nil {
				return err
			}
			key = append(key[:0], s...)
			d.keys[lvl] = key
			return nil
		case "value":
			return d.stringField(&kv.Value)
		case "modifiedIndex":
			return d.uintField(&kv.ModifiedIndex)
		case "dir":
			return d.boolField(&dir)
		case "nodes":
			if isNull, err := d.null(); isNull || err != nil {
				return err
			}
			return d.array(d.node)
		}
		return d.skip()
	})
	if err != nil {
		return err
	}
	if !dir {
		kv.Key = string(key)
		d.leaf(kv)
	}
	return nil
}

func (d *nodeDecoder) stringField(dst *string) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	s, err := d.stringBytes()
	if err != nil {
		return err
	}
	*dst = string(s)
	return nil
}

// stringBytes reads a string value and returns its decoded bytes, which
// stay valid only until the decoder reads on: a slice of the read buffer,
// or of the scratch buffer.
func (d *nodeDecoder) stringBytes() ([]byte, error) {
	if err := d.expect('"', "expected a string"); err != nil {
		return nil, err
	}
	// A string with nothing to unescape, whole in the buffer (every key,
	// most of the time), is taken straight from it.
	buf := d.buf[:d.end]
	i := d.pos
	for i+8 <= len(buf) && !special(binary.LittleEndian.Uint64(buf[i:])) {
		i += 8
	}
	for i < len(buf) && plain[buf[i]] {
		i++
	}
	if i < len(buf) && buf[i] == '"' {
		s := buf[d.pos:i]
		d.pos = i + 1
		return s, nil
	}
	s, err := d.str(d.scratch[:0])
	d.scratch = s[:0]
	return s, err
}

func (d *nodeDecoder) uintField(dst *uint64) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	c, ok := d.peek()
	if !ok || (c != '-' && (c < '0' || c > '9')) {
		return d.fail("expected a number")
	}
	// Fast path: 1 to 19 digits, no leading zero, ended by ',' or '}' in
	// the buffer; anything else takes the checked way below.
	if c != '0' && c != '-' {
		var v uint64
		i := d.pos
		for i < d.end && i-d.pos < 19 && d.buf[i] >= '0' && d.buf[i] <= '9' {
			v = v*10 + uint64(d.buf[i]-'0')
			i++
		}
		if i < d.end && (d.buf[i] == ',' || d.buf[i] == '}') {
			*dst = v
			d.pos = i
			return nil
		}
	}
	num, err := d.number(d.scratch[:0])
	d.scratch = num[:0]
	if err != nil {
		return err
	}
	var v uint64
	for _, c := range num {
		if c < '0' || c > '9' || v > (math.MaxUint64-uint64(c-'0'))/10 {
			return fmt.Errorf("%w: modifiedIndex %s is not a uint64", errSyntax, num)
		}
		v = v*10 + uint64(c-'0')
	}
	*dst = v
	return nil
}

func (d *nodeDecoder) boolField(dst *bool) error {
	c, ok := d.peek()
	switch {
	case ok && c == 't':
		*dst = true
		return d.literal("true")
	case ok && c == 'f':
		*dst = false
		return d.literal("false")
	case ok && c == 'n':
		return d.literal("null")
	}
	return d.fail("expected true or false")
}

// literal consumes word, which must be next.
func (d *nodeDecoder) literal(word string) error {
	if !d.fill(len(word)) {
		d.pos = d.end
		return d.fail("expected " + word)
	}
	for i := range len(word) {
		if d.buf[d.pos] != word[i] {
			return d.fail("expected " + word)
		}
		d.pos++
	}
	return nil
}

// skip checks the syntax of the next value and discards it.
func (d *nodeDecoder) skip() error {
	c, ok := d.peek()
	if !ok {
		return d.fail("expected a value")
	}
	switch {
	case c == '{':
		return d.object("a value", func([]byte) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		d.pos++
		s, err := d.str(d.scratch[:0])
		d.scratch = s[:0]
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		if c != '0' && c != '-' { // createdIndex: digits, then ',' or '}'
			i := d.pos
			for i < d.end && d.buf[i] >= '0' && d.buf[i] <= '9' {
				i++
			}
			if i < d.end && (d.buf[i] == ',' || d.buf[i] == '}' || d.buf[i] == ']') {
				d.pos = i
				return nil
			}
		}
		num, err := d.number(d.scratch[:0])
		d.scratch = num[:0]
		return err
	}
	return d.fail("expected a value")
}

// number appends the number next to dst, checking its syntax:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *nodeDecoder) number(dst []byte) ([]byte, error) {
	next := func() (byte, bool) {
		if d.pos < d.end || d.fill(1) {
			return d.buf[d.pos], true
		}
		return 0, false
	}
	take := func(c byte) { dst = append(dst, c); d.pos++ }
	digits := func() error { // one or more
		c, ok := next()
		if !ok || c < '0' || c > '9' {
			return d.fail("expected a digit")
		}
		for ok && c >= '0' && c <= '9' {
			take(c)
			c, ok = next()
		}
		return nil
	}
	c, ok := next()
	if ok && c == '-' {
		take(c)
		c, ok = next()
	}
	switch {
	case ok && c == '0':
		take(c)
	case ok && c >= '1' && c <= '9':
		if err := digits(); err != nil {
			return dst, err
		}
	default:
		return dst, d.fail("expected a digit")
	}
	if c, ok = next(); ok && c == '.' {
		take(c)
		if err := digits(); err != nil {
			return dst, err
		}
	}
	if c, ok = next(); ok && (c == 'e' || c == 'E') {
		take(c)
		if c, ok = next(); ok && (c == '+' || c == '-') {
			take(c)
		}
		if err := digits(); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// str appends to dst the unescaped contents of the string whose opening
// quote has just been consumed, and consumes its closing quote.
func (d *nodeDecoder) str(dst []byte) ([]byte, error) {
	for {
		buf := d.buf[:d.end]
		i, run := d.pos, d.pos // buf[run:i] is plain and not yet in dst
	scan:
		for i < len(buf) {
			// Eight plain bytes at a time: keys have long runs of them.
			for i+8 <= len(buf) && !special(binary.LittleEndian.Uint64(buf[i:])) {
				i += 8
			}
			for i < len(buf) {
				c := buf[i]
				if plain[c] {
					i++
					continue
				}
				switch {
				case c == '"':
					d.pos = i + 1
					return append(dst, buf[run:i]...), nil
				case c == '\\' && i+1 < len(buf) && unescape[buf[i+1]] != 0:
					// Calico's values escape a quote every few bytes.
					dst = append(dst, buf[run:i]...)
					dst = append(dst, unescape[buf[i+1]])
					i += 2
					run = i
					continue scan
				}
				break scan
			}
		}
		dst = append(dst, buf[run:i]...)
		d.pos = i
		if i == len(buf) {
			if !d.fill(1) {
				return dst, d.fail("unterminated string")
			}
			continue
		}
		switch c := buf[i]; {
		case c == '\\':
			var err error
			if dst, err = d.escape(dst); err != nil {
				return dst, err
			}
		case c < 0x20:
			return dst, d.fail("control character in string")
		default:
			d.fill(utf8.UTFMax) // short only at the body's end
			r, size := utf8.DecodeRune(d.buf[d.pos:d.end])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, d.buf[d.pos:d.pos+size]...)
			}
			d.pos += size
		}
	}
}

// unescape maps the character after a backslash to the byte it stands for,
// for the escapes of one character; 0 for \u and for invalid escapes.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// special reports whether any of the eight bytes of x may not be plain: a
// quote, a backslash, a control character or a byte above 0x7f. It may
// report a plain run as special (a borrow between bytes), never the reverse.
func special(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, b := x^(lo*'"'), x^(lo*'\\')
	return ((q-lo)&^q|(b-lo)&^b|(x-lo*0x20)|x)&hi != 0
}

// escape appends the character of the escape sequence at pos.
func (d *nodeDecoder) escape(dst []byte) ([]byte, error) {
	if !d.fill(2) {
		d.pos = d.end
		return dst, d.fail("unterminated escape")
	}
	c := d.buf[d.pos+1]
	switch c {
	case '"', '\\', '/':
		d.pos += 2
		return append(dst, c), nil
	case 'b':
		d.pos += 2
		return append(dst, '\b'), nil
	case 'f':
		d.pos += 2
		return append(dst, '\f'), nil
	case 'n':
		d.pos += 2
		return append(dst, '\n'), nil
	case 'r':
		d.pos += 2
		return append(dst, '\r'), nil
	case 't':
		d.pos += 2
		return append(dst, '\t'), nil
	case 'u':
		r, ok := d.u4()
		if !ok {
			return dst, d.fail("invalid \\u escape")
		}
		if utf16.IsSurrogate(r) {
			// A pair must follow at once; anything else leaves this
			// half as U+FFFD and is decoded on its own.
			if r2, ok := d.peekU4(); ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					d.pos += 6
					return utf8.AppendRune(dst, dec), nil
				}
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), nil
	}
	d.pos++ // the error names the character after the backslash
	return dst, d.fail("invalid escape")
}

// u4 consumes \uXXXX at pos and returns its code unit.
func (d *nodeDecoder) u4() (rune, bool) {
	d.fill(6)
	r, ok := hex4(d.buf[d.pos:d.end])
	if !ok {
		// Point the error at the first byte that is not a hex digit.
		d.pos += 2
		for d.pos < d.end && isHex(d.buf[d.pos]) {
			d.pos++
		}
		return 0, false
	}
	d.pos += 6
	return r, true
}

// peekU4 returns the code unit of a \uXXXX at pos without consuming it.
func (d *nodeDecoder) peekU4() (rune, bool) {
	d.fill(6)
	return hex4(d.buf[d.pos:d.end])
}

// hex4 decodes b's leading \uXXXX.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
