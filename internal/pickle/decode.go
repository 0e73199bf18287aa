package pickle

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits that keep a hostile or corrupt pickle from exhausting memory. Every
// opcode consumes at least one input byte and pushes at most one value, so
// the input length already bounds the work; these caps bound the structures
// a short input could otherwise grow (memo indices, mark nesting).
const (
	// MaxMarkDepth bounds nested MARKs. Real handles nest about a dozen
	// levels deep.
	MaxMarkDepth = 1000
	// MaxStack bounds the value stack.
	MaxStack = 1 << 20
	// MaxMemo bounds the number of memo entries.
	MaxMemo = 1 << 20
	// MaxInput bounds the pickle size Loads accepts (handles are KBs; the
	// largest SkyPilot ever sent were a few MB, skypilot#6950).
	MaxInput = 64 << 20
)

// ErrTruncated reports input that ends before STOP or inside an opcode's
// argument.
var ErrTruncated = errors.New("truncated pickle")

// Error is a decoding failure at a given opcode.
type Error struct {
	Op     byte   // the opcode byte
	Name   string // the opcode's name, e.g. "BINGET"
	Offset int    // offset of the opcode in the input
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("pickle: %s (0x%02x) at offset %d: %v", e.Name, e.Op, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// markObj is never returned; it only appears in error messages.
type markObj struct{}

// LoadsBase64 decodes a base64 (standard alphabet) pickle, as SkyPilot puts
// them in JSON. Surrounding whitespace is ignored.
func LoadsBase64(s string) (any, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("pickle: bad base64: %w", err)
	}
	return Loads(raw)
}

// Loads decodes one pickle. Bytes after STOP are ignored, as Python does.
func Loads(data []byte) (any, error) {
	if len(data) > MaxInput {
		return nil, fmt.Errorf("pickle: input of %d bytes exceeds %d", len(data), MaxInput)
	}
	d := &decoder{data: data, memo: make(map[uint32]any)}
	return d.run()
}

type decoder struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[uint32]any
}

func (d *decoder) run() (any, error) {
	for {
		if d.pos >= len(d.data) {
			return nil, fmt.Errorf("pickle: %w: no STOP opcode", ErrTruncated)
		}
		start := d.pos
		op := d.data[d.pos]
		d.pos++
		done, err := d.step(op)
		if err != nil {
			return nil, &Error{Op: op, Name: opName(op), Offset: start, Err: err}
		}
		if done {
			if len(d.stack) != 1 || len(d.marks) != 0 {
				return nil, &Error{Op: op, Name: "STOP", Offset: start,
					Err: fmt.Errorf("stack holds %d values and %d marks, want exactly 1 value", len(d.stack), len(d.marks))}
			}
			return d.stack[0], nil
		}
	}
}

// ---- input helpers ----

func (d *decoder) read(n int) ([]byte, error) {
	if n < 0 || n > len(d.data)-d.pos {
		return nil, fmt.Errorf("%w: need %d bytes, %d left", ErrTruncated, n, len(d.data)-d.pos)
	}
	b := d.data[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) readLine() (string, error) {
	i := bytes.IndexByte(d.data[d.pos:], '\n')
	if i < 0 {
		return "", fmt.Errorf("%w: no newline", ErrTruncated)
	}
	s := string(d.data[d.pos : d.pos+i])
	d.pos += i + 1
	return s, nil
}

func (d *decoder) u8() (int, error) {
	b, err := d.read(1)
	if err != nil {
		return 0, err
	}
	return int(b[0]), nil
}

func (d *decoder) u16() (int, error) {
	b, err := d.read(2)
	if err != nil {
		return 0, err
	}
	return int(binary.LittleEndian.Uint16(b)), nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64len() (int, error) {
	b, err := d.read(8)
	if err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(d.data)-d.pos) {
		return 0, fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrTruncated, n, len(d.data)-d.pos)
	}
	return int(n), nil
}

func (d *decoder) u32len() (int, error) {
	n, err := d.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(len(d.data)-d.pos) {
		return 0, fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrTruncated, n, len(d.data)-d.pos)
	}
	return int(n), nil
}

// ---- stack helpers ----

func (d *decoder) push(v any) error {
	if len(d.stack) >= MaxStack {
		return fmt.Errorf("stack deeper than %d", MaxStack)
	}
	d.stack = append(d.stack, v)
	return nil
}

func (d *decoder) floor() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

func (d *decoder) pop() (any, error) {
	if len(d.stack) <= d.floor() {
		return nil, errors.New("stack underflow")
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *decoder) top() (any, error) {
	if len(d.stack) <= d.floor() {
		return nil, errors.New("stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark removes everything above the latest MARK and the mark itself.
func (d *decoder) popMark() ([]any, error) {
	if len(d.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := append([]any(nil), d.stack[m:]...)
	d.stack = d.stack[:m]
	return items, nil
}

func (d *decoder) memoPut(idx uint32) error {
	v, err := d.top()
	if err != nil {
		return err
	}
	if _, ok := d.memo[idx]; !ok && len(d.memo) >= MaxMemo {
		return fmt.Errorf("memo larger than %d entries", MaxMemo)
	}
	d.memo[idx] = v
	return nil
}

func (d *decoder) memoGet(idx uint32) error {
	v, ok := d.memo[idx]
	if !ok {
		return fmt.Errorf("memo key %d not found", idx)
	}
	return d.push(v)
}

// ---- the machine ----

func (d *decoder) step(op byte) (stop bool, err error) {
	switch op {
	case opPROTO:
		v, err := d.u8()
		if err != nil {
			return false, err
		}
		if v > 5 {
			return false, fmt.Errorf("unsupported protocol %d", v)
		}
	case opFRAME:
		// Frames only help streaming readers; the whole pickle is in
		// memory, so it is enough that the frame fits in the input.
		if _, err := d.u64len(); err != nil {
			return false, err
		}
	case opSTOP:
		return true, nil

	case opMARK:
		if len(d.marks) >= MaxMarkDepth {
			return false, fmt.Errorf("MARKs nested deeper than %d", MaxMarkDepth)
		}
		d.marks = append(d.marks, len(d.stack))
	case opPOP:
		if len(d.stack) > d.floor() {
			d.stack = d.stack[:len(d.stack)-1]
		} else if _, err := d.popMark(); err != nil {
			return false, errors.New("stack underflow")
		}
	case opPOP_MARK:
		_, err := d.popMark()
		return false, err
	case opDUP:
		v, err := d.top()
		if err != nil {
			return false, err
		}
		return false, d.push(v)

	case opNONE:
		return false, d.push(nil)
	case opNEWTRUE:
		return false, d.push(true)
	case opNEWFALSE:
		return false, d.push(false)

	case opINT:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		switch line {
		case "00":
			return false, d.push(false)
		case "01":
			return false, d.push(true)
		}
		v, err := parseInt(line)
		if err != nil {
			return false, err
		}
		return false, d.push(v)
	case opLONG:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		v, err := parseInt(strings.TrimSuffix(line, "L"))
		if err != nil {
			return false, err
		}
		return false, d.push(v)
	case opBININT:
		v, err := d.u32()
		if err != nil {
			return false, err
		}
		return false, d.push(int64(int32(v)))
	case opBININT1:
		v, err := d.u8()
		if err != nil {
			return false, err
		}
		return false, d.push(int64(v))
	case opBININT2:
		v, err := d.u16()
		if err != nil {
			return false, err
		}
		return false, d.push(int64(v))
	case opLONG1:
		n, err := d.u8()
		if err != nil {
			return false, err
		}
		b, err := d.read(n)
		if err != nil {
			return false, err
		}
		return false, d.push(decodeLong(b))
	case opLONG4:
		n, err := d.u32()
		if err != nil {
			return false, err
		}
		if int32(n) < 0 {
			return false, errors.New("negative LONG4 length")
		}
		b, err := d.read(int(n))
		if err != nil {
			return false, err
		}
		return false, d.push(decodeLong(b))
	case opFLOAT:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		f, err := strconv.ParseFloat(line, 64)
		if err != nil {
			return false, fmt.Errorf("bad float %q", line)
		}
		return false, d.push(f)
	case opBINFLOAT:
		b, err := d.read(8)
		if err != nil {
			return false, err
		}
		return false, d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case opSTRING:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		s, err := unquotePy(line)
		if err != nil {
			return false, err
		}
		return false, d.push(s)
	case opBINSTRING:
		n, err := d.u32len()
		if err != nil {
			return false, err
		}
		b, _ := d.read(n)
		return false, d.push(string(b))
	case opSHORT_BINSTRING:
		n, err := d.u8()
		if err != nil {
			return false, err
		}
		b, err := d.read(n)
		if err != nil {
			return false, err
		}
		return false, d.push(string(b))
	case opUNICODE:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		s, err := rawUnicodeEscape(line)
		if err != nil {
			return false, err
		}
		return false, d.push(s)
	case opBINUNICODE, opSHORT_BINUNICODE, opBINUNICODE8:
		var n int
		switch op {
		case opBINUNICODE:
			n, err = d.u32len()
		case opSHORT_BINUNICODE:
			n, err = d.u8()
		default:
			n, err = d.u64len()
		}
		if err != nil {
			return false, err
		}
		b, err := d.read(n)
		if err != nil {
			return false, err
		}
		// Python writes surrogates with surrogatepass; Go keeps the bytes.
		return false, d.push(string(b))
	case opBINBYTES, opSHORT_BINBYTES, opBINBYTES8, opBYTEARRAY8:
		var n int
		switch op {
		case opBINBYTES:
			n, err = d.u32len()
		case opSHORT_BINBYTES:
			n, err = d.u8()
		default:
			n, err = d.u64len()
		}
		if err != nil {
			return false, err
		}
		b, err := d.read(n)
		if err != nil {
			return false, err
		}
		return false, d.push(append([]byte{}, b...))

	case opEMPTY_LIST:
		return false, d.push(&List{})
	case opLIST:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		l := List(items)
		return false, d.push(&l)
	case opAPPEND:
		v, err := d.pop()
		if err != nil {
			return false, err
		}
		return false, d.appendTo([]any{v})
	case opAPPENDS:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		return false, d.appendTo(items)

	case opEMPTY_TUPLE:
		return false, d.push(Tuple{})
	case opTUPLE:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		return false, d.push(Tuple(items))
	case opTUPLE1, opTUPLE2, opTUPLE3:
		n := int(op-opTUPLE1) + 1
		if len(d.stack)-d.floor() < n {
			return false, errors.New("stack underflow")
		}
		t := append(Tuple{}, d.stack[len(d.stack)-n:]...)
		d.stack = d.stack[:len(d.stack)-n]
		return false, d.push(t)

	case opEMPTY_DICT:
		return false, d.push(NewDict())
	case opDICT:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		if len(items)%2 != 0 {
			return false, errors.New("odd number of items for DICT")
		}
		m := NewDict()
		for i := 0; i < len(items); i += 2 {
			m.Set(items[i], items[i+1])
		}
		return false, d.push(m)
	case opSETITEM:
		if len(d.stack)-d.floor() < 2 {
			return false, errors.New("stack underflow")
		}
		k, v := d.stack[len(d.stack)-2], d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-2]
		return false, d.setItems([]any{k, v})
	case opSETITEMS:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		if len(items)%2 != 0 {
			return false, errors.New("odd number of items for SETITEMS")
		}
		return false, d.setItems(items)

	case opEMPTY_SET:
		return false, d.push(&Set{})
	case opADDITEMS:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		t, err := d.top()
		if err != nil {
			return false, err
		}
		s, ok := t.(*Set)
		if !ok || s.Frozen {
			return false, fmt.Errorf("ADDITEMS to a %s", typeName(t))
		}
		s.Items = append(s.Items, items...)
	case opFROZENSET:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		return false, d.push(&Set{Items: items, Frozen: true})

	case opGLOBAL:
		mod, err := d.readLine()
		if err != nil {
			return false, err
		}
		name, err := d.readLine()
		if err != nil {
			return false, err
		}
		return false, d.push(Global{Module: mod, Name: name})
	case opSTACK_GLOBAL:
		if len(d.stack)-d.floor() < 2 {
			return false, errors.New("stack underflow")
		}
		mod, ok1 := d.stack[len(d.stack)-2].(string)
		name, ok2 := d.stack[len(d.stack)-1].(string)
		if !ok1 || !ok2 {
			return false, errors.New("module and name must be strings")
		}
		d.stack = d.stack[:len(d.stack)-2]
		return false, d.push(Global{Module: mod, Name: name})
	case opINST:
		mod, err := d.readLine()
		if err != nil {
			return false, err
		}
		name, err := d.readLine()
		if err != nil {
			return false, err
		}
		args, err := d.popMark()
		if err != nil {
			return false, err
		}
		return false, d.push(&Object{Module: mod, Name: name, Args: args})
	case opOBJ:
		items, err := d.popMark()
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, errors.New("OBJ without a class")
		}
		g, ok := items[0].(Global)
		if !ok {
			return false, fmt.Errorf("OBJ of a %s", typeName(items[0]))
		}
		return false, d.push(&Object{Module: g.Module, Name: g.Name, Args: items[1:]})
	case opREDUCE:
		if len(d.stack)-d.floor() < 2 {
			return false, errors.New("stack underflow")
		}
		fn, args := d.stack[len(d.stack)-2], d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-2]
		v, err := reduce(fn, args)
		if err != nil {
			return false, err
		}
		return false, d.push(v)
	case opNEWOBJ:
		if len(d.stack)-d.floor() < 2 {
			return false, errors.New("stack underflow")
		}
		cls, args := d.stack[len(d.stack)-2], d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-2]
		v, err := newObj(cls, args, nil)
		if err != nil {
			return false, err
		}
		return false, d.push(v)
	case opNEWOBJ_EX:
		if len(d.stack)-d.floor() < 3 {
			return false, errors.New("stack underflow")
		}
		cls, args, kw := d.stack[len(d.stack)-3], d.stack[len(d.stack)-2], d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-3]
		kwargs, ok := kw.(*Dict)
		if !ok {
			return false, fmt.Errorf("NEWOBJ_EX keyword arguments are a %s", typeName(kw))
		}
		v, err := newObj(cls, args, kwargs)
		if err != nil {
			return false, err
		}
		return false, d.push(v)
	case opBUILD:
		state, err := d.pop()
		if err != nil {
			return false, err
		}
		t, err := d.top()
		if err != nil {
			return false, err
		}
		return false, build(t, state)

	case opPUT:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		n, err := strconv.ParseUint(line, 10, 32)
		if err != nil {
			return false, fmt.Errorf("bad memo key %q", line)
		}
		return false, d.memoPut(uint32(n))
	case opBINPUT:
		n, err := d.u8()
		if err != nil {
			return false, err
		}
		return false, d.memoPut(uint32(n))
	case opLONG_BINPUT:
		n, err := d.u32()
		if err != nil {
			return false, err
		}
		return false, d.memoPut(n)
	case opMEMOIZE:
		if len(d.memo) >= MaxMemo {
			return false, fmt.Errorf("memo larger than %d entries", MaxMemo)
		}
		return false, d.memoPut(uint32(len(d.memo)))
	case opGET:
		line, err := d.readLine()
		if err != nil {
			return false, err
		}
		n, err := strconv.ParseUint(line, 10, 32)
		if err != nil {
			return false, fmt.Errorf("bad memo key %q", line)
		}
		return false, d.memoGet(uint32(n))
	case opBINGET:
		n, err := d.u8()
		if err != nil {
			return false, err
		}
		return false, d.memoGet(uint32(n))
	case opLONG_BINGET:
		n, err := d.u32()
		if err != nil {
			return false, err
		}
		return false, d.memoGet(n)

	default:
		return false, errors.New("unsupported opcode")
	}
	return false, nil
}

func (d *decoder) appendTo(items []any) error {
	t, err := d.top()
	if err != nil {
		return err
	}
	switch l := t.(type) {
	case *List:
		*l = append(*l, items...)
	case *Object:
		l.ListItems = append(l.ListItems, items...)
	default:
		return fmt.Errorf("append to a %s", typeName(t))
	}
	return nil
}

func (d *decoder) setItems(items []any) error {
	t, err := d.top()
	if err != nil {
		return err
	}
	var m *Dict
	switch v := t.(type) {
	case *Dict:
		m = v
	case *Object:
		// A dict subclass (defaultdict, a custom mapping) receives its
		// items through SETITEMS after REDUCE/NEWOBJ.
		if v.DictItems == nil {
			v.DictItems = NewDict()
		}
		m = v.DictItems
	default:
		return fmt.Errorf("set item on a %s", typeName(t))
	}
	for i := 0; i < len(items); i += 2 {
		m.Set(items[i], items[i+1])
	}
	return nil
}

func newObj(cls, args any, kwargs *Dict) (any, error) {
	g, ok := cls.(Global)
	if !ok {
		return nil, fmt.Errorf("class is a %s", typeName(cls))
	}
	t, ok := args.(Tuple)
	if !ok {
		return nil, fmt.Errorf("arguments are a %s, want a tuple", typeName(args))
	}
	switch g.Module + "." + g.Name {
	case "builtins.dict", "collections.OrderedDict":
		return NewDict(), nil
	case "builtins.list":
		return &List{}, nil
	case "builtins.set":
		return &Set{}, nil
	}
	return &Object{Module: g.Module, Name: g.Name, Args: []any(t), Kwargs: kwargs}, nil
}

// reduce applies the handful of callables Python's own pickler uses for
// builtin types; anything else becomes a generic *Object.
func reduce(fn, args any) (any, error) {
	g, ok := fn.(Global)
	if !ok {
		return nil, fmt.Errorf("callable is a %s", typeName(fn))
	}
	t, ok := args.(Tuple)
	if !ok {
		return nil, fmt.Errorf("arguments are a %s, want a tuple", typeName(args))
	}
	switch g.Module + "." + g.Name {
	case "builtins.set", "__builtin__.set", "builtins.frozenset", "__builtin__.frozenset":
		s := &Set{Frozen: strings.HasSuffix(g.Name, "frozenset")}
		if len(t) == 1 {
			items, ok := Items(t[0])
			if !ok {
				return nil, fmt.Errorf("%s of a %s", g.Name, typeName(t[0]))
			}
			s.Items = append(s.Items, items...)
		}
		return s, nil
	case "collections.OrderedDict", "builtins.dict":
		if len(t) == 0 {
			return NewDict(), nil
		}
	case "builtins.bytearray":
		if len(t) == 1 {
			if b, ok := t[0].([]byte); ok {
				return b, nil
			}
		}
	case "_codecs.encode":
		// Protocol 2 writes bytes as _codecs.encode(latin1_text, 'latin1').
		if len(t) == 2 {
			s, ok1 := t[0].(string)
			enc, ok2 := t[1].(string)
			if ok1 && ok2 && (enc == "latin1" || enc == "latin-1") {
				b := make([]byte, 0, len(s))
				for _, r := range s {
					if r > 0xff {
						return nil, errors.New("non-latin1 text in _codecs.encode")
					}
					b = append(b, byte(r))
				}
				return b, nil
			}
		}
	case "copyreg._reconstructor", "copy_reg._reconstructor":
		if len(t) >= 1 {
			if cls, ok := t[0].(Global); ok {
				return &Object{Module: cls.Module, Name: cls.Name, Args: []any(t[1:])}, nil
			}
		}
	}
	return &Object{Module: g.Module, Name: g.Name, Args: []any(t)}, nil
}

func build(target, state any) error {
	switch o := target.(type) {
	case *Object:
		if prev, ok := o.State.(*Dict); ok {
			if next, ok := state.(*Dict); ok && prev != next {
				next.Range(func(k, v any) bool { prev.Set(k, v); return true })
				return nil
			}
		}
		o.State = state
		return nil
	case *Dict:
		// A dict subclass whose class the decoder mapped to *Dict: BUILD
		// with a dict updates its instance dict, which a plain mapping view
		// has no place for; accept and ignore an empty one.
		if s, ok := state.(*Dict); ok && s.Len() == 0 || state == nil {
			return nil
		}
	}
	return fmt.Errorf("BUILD on a %s", typeName(target))
}

// decodeLong decodes a little-endian two's complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if b[len(b)-1]&0x80 != 0 && len(b) < 8 {
			u |= ^uint64(0) << (8 * len(b))
		}
		return int64(u)
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

func parseInt(s string) (any, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("bad integer %q", truncate(s))
	}
	return n, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// unquotePy decodes the repr of a Python 2 str (protocol 0 STRING).
func unquotePy(s string) (string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", fmt.Errorf("STRING argument %q is not quoted", truncate(s))
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '\'', '"':
			b.WriteByte(s[i])
		case 'x':
			if i+3 > len(s) {
				return "", errors.New("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errors.New("bad \\x escape")
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// rawUnicodeEscape decodes Python's raw-unicode-escape (protocol 0
// UNICODE): \uXXXX and \UXXXXXXXX escapes, every other byte is latin-1.
func rawUnicodeEscape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(s) {
				return "", errors.New("short unicode escape")
			}
			v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", errors.New("bad unicode escape")
			}
			b.WriteRune(rune(v))
			i += 1 + n
			continue
		}
		b.WriteRune(rune(c))
	}
	return b.String(), nil
}
