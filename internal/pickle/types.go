// Package pickle decodes (and, for test servers, encodes) Python pickles of
// protocols 2 to 5.
//
// It exists because the SkyPilot API server hands out cluster handles only as
// base64 pickles of CloudVmRayResourceHandle objects, and the node addresses
// live nowhere else. The decoder is a plain pickle virtual machine: it never
// imports or runs anything, so classes it does not know decode generically
// into *Object values carrying the module path, class name, constructor
// arguments and state (usually the instance __dict__).
//
// Value mapping:
//
//	None            nil
//	bool            bool
//	int             int64, or *big.Int when it does not fit
//	float           float64
//	str             string
//	bytes           []byte (bytearray too)
//	tuple           Tuple
//	list            *List
//	dict            *Dict (insertion ordered)
//	set, frozenset  *Set (Frozen set for frozenset)
//	class reference Global
//	instance        *Object
//
// Lists, dicts, sets and objects are pointers because the pickle memo shares
// them: an item appended after a BINPUT must be visible through every
// reference, exactly as in Python.
package pickle

import (
	"fmt"
	"math/big"
)

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list.
type List []any

// Set is a Python set or frozenset (Frozen tells which). Items keep the
// order in which the pickle listed them.
type Set struct {
	Items  []any
	Frozen bool
}

// Global is a reference to a module-level name (usually a class), as
// written by GLOBAL or STACK_GLOBAL.
type Global struct {
	Module, Name string
}

func (g Global) String() string { return g.Module + "." + g.Name }

// Object is an instance of a class the decoder does not special-case.
//
// Args are the arguments given to the class (NEWOBJ) or to the callable
// (REDUCE); an enum member, for instance, has its value as Args[0]. State is
// what BUILD supplied: normally a *Dict of attributes, or a Tuple of
// (dict-or-nil, slots-dict) for classes with __slots__.
type Object struct {
	Module, Name string
	Args         []any
	State        any
	// Kwargs holds NEWOBJ_EX keyword arguments, if any.
	Kwargs *Dict
	// ListItems and DictItems receive APPEND(S) and SETITEM(S) aimed at
	// the object: list and dict subclasses are pickled that way.
	ListItems []any
	DictItems *Dict
}

// Class returns "module.Name".
func (o *Object) Class() string { return o.Module + "." + o.Name }

// Attr returns the attribute name from the object's state dict (or the
// slots dict when the state is a (dict, slots) tuple).
func (o *Object) Attr(name string) (any, bool) {
	if o == nil {
		return nil, false
	}
	switch st := o.State.(type) {
	case *Dict:
		return st.Get(name)
	case Tuple:
		for _, part := range st {
			if d, ok := part.(*Dict); ok {
				if v, ok := d.Get(name); ok {
					return v, true
				}
			}
		}
	}
	return nil, false
}

// Dict is an insertion-ordered Python dict. Keys that are Go-comparable
// scalars (string, int64, float64, bool, nil) are indexed, so assigning an
// existing key replaces its value as Python does; other keys (tuples,
// big ints) are appended.
type Dict struct {
	keys   []any
	values []any
	index  map[any]int
}

// NewDict returns an empty dict.
func NewDict() *Dict { return &Dict{} }

func hashable(k any) bool {
	switch k.(type) {
	case nil, string, int64, float64, bool:
		return true
	}
	return false
}

// Set assigns d[key] = value.
func (d *Dict) Set(key, value any) {
	if hashable(key) {
		if i, ok := d.index[key]; ok {
			d.values[i] = value
			return
		}
		if d.index == nil {
			d.index = make(map[any]int)
		}
		d.index[key] = len(d.keys)
	}
	d.keys = append(d.keys, key)
	d.values = append(d.values, value)
}

// Get returns d[key] for a comparable scalar key; an int key matches an
// int64 entry.
func (d *Dict) Get(key any) (any, bool) {
	if d == nil {
		return nil, false
	}
	if k, ok := key.(int); ok {
		key = int64(k)
	}
	if !hashable(key) {
		return nil, false
	}
	i, ok := d.index[key]
	if !ok {
		return nil, false
	}
	return d.values[i], true
}

// Len returns the number of entries.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.keys)
}

// Keys returns the keys in insertion order.
func (d *Dict) Keys() []any {
	if d == nil {
		return nil
	}
	return append([]any(nil), d.keys...)
}

// Range calls fn for each entry in insertion order until fn returns false.
func (d *Dict) Range(fn func(key, value any) bool) {
	if d == nil {
		return
	}
	for i := range d.keys {
		if !fn(d.keys[i], d.values[i]) {
			return
		}
	}
}

// String helpers used by callers navigating decoded handles.

// AsString returns v as a string.
func AsString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// AsInt returns v as an int when it is an int64 (or a *big.Int, or a bool)
// that fits.
func AsInt(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), int64(int(n)) == n
	case *big.Int:
		if n.IsInt64() {
			return AsInt(n.Int64())
		}
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Items returns the elements of a Tuple, *List or *Set.
func Items(v any) ([]any, bool) {
	switch s := v.(type) {
	case Tuple:
		return s, true
	case *List:
		if s == nil {
			return nil, false
		}
		return *s, true
	case *Set:
		if s == nil {
			return nil, false
		}
		return s.Items, true
	}
	return nil, false
}

// typeName names a decoded value's Python type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		return "dict"
	case *Set:
		return "set"
	case Global:
		return "class"
	case *Object:
		return v.(*Object).Class()
	case markObj:
		return "mark"
	}
	return fmt.Sprintf("%T", v)
}
