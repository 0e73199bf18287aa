package pickle

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
)

// Dumps encodes v as a protocol 4 pickle laid out the way CPython's C
// pickler lays it out (one FRAME, MEMOIZE after every string, container,
// class reference and instance, BINGET for repeats), so that test servers
// can hand out handles indistinguishable from SkyPilot's.
//
// Accepted values: nil, bool, int, int64, float64, string, []byte, Tuple,
// *List, []any (as a list), *Dict, *Set, Global and *Object. An *Object is
// written as NEWOBJ (class, Args) followed by BUILD State when State is not
// nil, which is what object.__reduce_ex__(4) produces for plain classes and
// dataclasses. Equal strings share one memo entry, as Python's interned
// attribute names do.
func Dumps(v any) ([]byte, error) {
	e := &encoder{
		strs:  make(map[string]uint32),
		ptrs:  make(map[any]uint32),
		globs: make(map[Global]uint32),
	}
	if err := e.save(v, 0); err != nil {
		return nil, err
	}
	e.body.WriteByte(opSTOP)
	var out bytes.Buffer
	out.Write([]byte{opPROTO, 4})
	if e.body.Len() >= 4 {
		out.WriteByte(opFRAME)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(e.body.Len()))
		out.Write(n[:])
	}
	out.Write(e.body.Bytes())
	return out.Bytes(), nil
}

// DumpsBase64 is Dumps followed by standard base64, SkyPilot's wire form.
func DumpsBase64(v any) (string, error) {
	b, err := Dumps(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// maxEncodeDepth guards against cyclic values built without pointers we
// can memoise (e.g. a Tuple containing itself through an Object's Args).
const maxEncodeDepth = 500

type encoder struct {
	body  bytes.Buffer
	next  uint32
	strs  map[string]uint32
	ptrs  map[any]uint32
	globs map[Global]uint32
}

func (e *encoder) memoize() uint32 {
	e.body.WriteByte(opMEMOIZE)
	e.next++
	return e.next - 1
}

func (e *encoder) get(idx uint32) {
	if idx < 256 {
		e.body.Write([]byte{opBINGET, byte(idx)})
		return
	}
	var b [5]byte
	b[0] = opLONG_BINGET
	binary.LittleEndian.PutUint32(b[1:], idx)
	e.body.Write(b[:])
}

func (e *encoder) sized(short, long byte, data []byte) {
	if len(data) < 256 {
		e.body.Write([]byte{short, byte(len(data))})
	} else {
		var b [5]byte
		b[0] = long
		binary.LittleEndian.PutUint32(b[1:], uint32(len(data)))
		e.body.Write(b[:])
	}
	e.body.Write(data)
}

func (e *encoder) saveInt(n int64) {
	switch {
	case n >= 0 && n < 256:
		e.body.Write([]byte{opBININT1, byte(n)})
	case n >= 0 && n < 65536:
		e.body.Write([]byte{opBININT2, byte(n), byte(n >> 8)})
	case n >= math.MinInt32 && n <= math.MaxInt32:
		var b [5]byte
		b[0] = opBININT
		binary.LittleEndian.PutUint32(b[1:], uint32(int32(n)))
		e.body.Write(b[:])
	default:
		e.saveBig(big.NewInt(n))
	}
}

func (e *encoder) saveBig(n *big.Int) {
	// Minimal little-endian two's complement, as Python's encode_long.
	var le []byte
	if n.Sign() >= 0 {
		be := n.Bytes()
		for i := len(be) - 1; i >= 0; i-- {
			le = append(le, be[i])
		}
		if len(le) == 0 || le[len(le)-1]&0x80 != 0 {
			le = append(le, 0)
		}
	} else {
		nbytes := (n.BitLen() + 8) / 8
		m := new(big.Int).Add(n, new(big.Int).Lsh(big.NewInt(1), uint(8*nbytes)))
		be := m.Bytes()
		for i := len(be) - 1; i >= 0; i-- {
			le = append(le, be[i])
		}
		for len(le) < nbytes {
			le = append(le, 0)
		}
		for len(le) > 1 && le[len(le)-1] == 0xff && le[len(le)-2]&0x80 != 0 {
			le = le[:len(le)-1]
		}
	}
	if len(le) < 256 {
		e.body.Write([]byte{opLONG1, byte(len(le))})
	} else {
		var b [5]byte
		b[0] = opLONG4
		binary.LittleEndian.PutUint32(b[1:], uint32(len(le)))
		e.body.Write(b[:])
	}
	e.body.Write(le)
}

func (e *encoder) save(v any, depth int) error {
	if depth > maxEncodeDepth {
		return fmt.Errorf("pickle: value nested deeper than %d", maxEncodeDepth)
	}
	switch x := v.(type) {
	case nil:
		e.body.WriteByte(opNONE)
	case bool:
		if x {
			e.body.WriteByte(opNEWTRUE)
		} else {
			e.body.WriteByte(opNEWFALSE)
		}
	case int:
		e.saveInt(int64(x))
	case int64:
		e.saveInt(x)
	case *big.Int:
		e.saveBig(x)
	case float64:
		var b [9]byte
		b[0] = opBINFLOAT
		binary.BigEndian.PutUint64(b[1:], math.Float64bits(x))
		e.body.Write(b[:])
	case string:
		if idx, ok := e.strs[x]; ok {
			e.get(idx)
			return nil
		}
		if len(x) < 256 {
			e.sized(opSHORT_BINUNICODE, opSHORT_BINUNICODE, []byte(x))
		} else {
			e.sized(opBINUNICODE, opBINUNICODE, []byte(x))
		}
		e.strs[x] = e.memoize()
	case []byte:
		e.sized(opSHORT_BINBYTES, opBINBYTES, x)
		e.memoize()
	case Tuple:
		if len(x) == 0 {
			e.body.WriteByte(opEMPTY_TUPLE)
			return nil
		}
		if len(x) > 3 {
			e.body.WriteByte(opMARK)
		}
		for _, it := range x {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
		}
		if len(x) > 3 {
			e.body.WriteByte(opTUPLE)
		} else {
			e.body.WriteByte(opTUPLE1 + byte(len(x)-1))
		}
		e.memoize()
	case []any:
		l := List(x)
		return e.save(&l, depth)
	case *List:
		if idx, ok := e.ptrs[x]; ok {
			e.get(idx)
			return nil
		}
		e.body.WriteByte(opEMPTY_LIST)
		e.ptrs[x] = e.memoize()
		return e.batch(*x, opAPPEND, opAPPENDS, depth)
	case *Dict:
		if idx, ok := e.ptrs[x]; ok {
			e.get(idx)
			return nil
		}
		e.body.WriteByte(opEMPTY_DICT)
		e.ptrs[x] = e.memoize()
		flat := make([]any, 0, 2*x.Len())
		x.Range(func(k, v any) bool { flat = append(flat, k, v); return true })
		return e.batchPairs(flat, depth)
	case *Set:
		if idx, ok := e.ptrs[x]; ok {
			e.get(idx)
			return nil
		}
		if x.Frozen {
			e.body.WriteByte(opMARK)
			for _, it := range x.Items {
				if err := e.save(it, depth+1); err != nil {
					return err
				}
			}
			e.body.WriteByte(opFROZENSET)
			e.ptrs[x] = e.memoize()
			return nil
		}
		e.body.WriteByte(opEMPTY_SET)
		e.ptrs[x] = e.memoize()
		if len(x.Items) > 0 {
			e.body.WriteByte(opMARK)
			for _, it := range x.Items {
				if err := e.save(it, depth+1); err != nil {
					return err
				}
			}
			e.body.WriteByte(opADDITEMS)
		}
	case Global:
		e.saveGlobal(x)
	case *Object:
		if idx, ok := e.ptrs[x]; ok {
			e.get(idx)
			return nil
		}
		e.saveGlobal(Global{Module: x.Module, Name: x.Name})
		if err := e.save(Tuple(x.Args), depth+1); err != nil {
			return err
		}
		e.body.WriteByte(opNEWOBJ)
		e.ptrs[x] = e.memoize()
		if x.State != nil {
			if err := e.save(x.State, depth+1); err != nil {
				return err
			}
			e.body.WriteByte(opBUILD)
		}
	default:
		return fmt.Errorf("pickle: cannot encode %T", v)
	}
	return nil
}

func (e *encoder) saveGlobal(g Global) {
	if idx, ok := e.globs[g]; ok {
		e.get(idx)
		return
	}
	// CPython memoises the module and name strings before STACK_GLOBAL.
	_ = e.save(g.Module, 0)
	_ = e.save(g.Name, 0)
	e.body.WriteByte(opSTACK_GLOBAL)
	e.globs[g] = e.memoize()
}

// batch writes APPEND for a single item and MARK ... APPENDS in batches of
// 1000 otherwise, like CPython's batch_list.
func (e *encoder) batch(items []any, one, many byte, depth int) error {
	for len(items) > 0 {
		n := min(len(items), 1000)
		chunk := items[:n]
		items = items[n:]
		if n == 1 {
			if err := e.save(chunk[0], depth+1); err != nil {
				return err
			}
			e.body.WriteByte(one)
			continue
		}
		e.body.WriteByte(opMARK)
		for _, it := range chunk {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
		}
		e.body.WriteByte(many)
	}
	return nil
}

func (e *encoder) batchPairs(flat []any, depth int) error {
	for len(flat) > 0 {
		n := min(len(flat), 2000)
		chunk := flat[:n]
		flat = flat[n:]
		if n == 2 {
			if err := e.save(chunk[0], depth+1); err != nil {
				return err
			}
			if err := e.save(chunk[1], depth+1); err != nil {
				return err
			}
			e.body.WriteByte(opSETITEM)
			continue
		}
		e.body.WriteByte(opMARK)
		for _, it := range chunk {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
		}
		e.body.WriteByte(opSETITEMS)
	}
	return nil
}
