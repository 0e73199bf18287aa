package pickle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// summarize extracts from a decoded handle the fields gen_fixtures.py
// writes to <fixture>.json, using only the generic Object/Dict API.
func summarize(t *testing.T, v any) map[string]any {
	t.Helper()
	h, ok := v.(*Object)
	if !ok {
		t.Fatalf("decoded a %T, want *Object", v)
	}
	if h.Class() != "sky.backends.cloud_vm_ray_backend.CloudVmRayResourceHandle" {
		t.Fatalf("class %s", h.Class())
	}
	attr := func(o *Object, name string) any {
		t.Helper()
		v, ok := o.Attr(name)
		if !ok {
			t.Fatalf("%s has no attribute %s", o.Class(), name)
		}
		return v
	}
	out := map[string]any{}
	for _, k := range []string{"cluster_name", "cluster_name_on_cloud", "docker_user"} {
		out[k] = attr(h, k)
	}
	out["version"] = float64(attr(h, "_version").(int64))
	out["launched_nodes"] = float64(attr(h, "launched_nodes").(int64))
	var ips []any
	pairs, _ := Items(attr(h, "stable_internal_external_ips"))
	for _, p := range pairs {
		tup := p.(Tuple)
		ips = append(ips, []any{tup[0], tup[1]})
	}
	out["stable_internal_external_ips"] = ips
	var ports []any
	ps, _ := Items(attr(h, "stable_ssh_ports"))
	for _, p := range ps {
		n, _ := AsInt(p)
		ports = append(ports, float64(n))
	}
	out["stable_ssh_ports"] = ports
	info := attr(h, "cached_cluster_info").(*Object)
	out["ssh_user"] = attr(info, "ssh_user")
	out["head_instance_id"] = attr(info, "head_instance_id")
	res := attr(h, "launched_resources").(*Object)
	cloud := attr(res, "_cloud").(*Object)
	out["cloud"] = cloud.Class()
	out["region"] = attr(res, "_region")
	out["instance_type"] = attr(res, "_instance_type")
	// The enum decodes generically: class and value.
	tier := attr(res, "_disk_tier").(*Object)
	if tier.Class() != "sky.utils.resources_utils.DiskTier" || len(tier.Args) != 1 || tier.Args[0] != "medium" {
		t.Errorf("disk tier decoded as %+v", tier)
	}
	return out
}

func TestFixtures(t *testing.T) {
	for _, name := range []string{"handle_2node", "handle_1node_docker"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		for _, proto := range []string{"p2", "p4", "p5"} {
			t.Run(name+"_"+proto, func(t *testing.T) {
				pkl, err := os.ReadFile(filepath.Join("testdata", name+"_"+proto+".pkl"))
				if err != nil {
					t.Fatal(err)
				}
				v, err := Loads(pkl)
				if err != nil {
					t.Fatal(err)
				}
				if got := summarize(t, v); !reflect.DeepEqual(got, want) {
					t.Errorf("summary mismatch\n got %v\nwant %v", got, want)
				}
				b64, err := os.ReadFile(filepath.Join("testdata", name+"_"+proto+".b64"))
				if err != nil {
					t.Fatal(err)
				}
				v2, err := LoadsBase64(string(b64))
				if err != nil {
					t.Fatal(err)
				}
				if got := summarize(t, v2); !reflect.DeepEqual(got, want) {
					t.Errorf("base64 summary mismatch")
				}
			})
		}
	}
}

func TestPickledNone(t *testing.T) {
	v, err := LoadsBase64("gAROLg==")
	if err != nil || v != nil {
		t.Fatalf("got %v, %v; want nil, nil", v, err)
	}
	raw, _ := os.ReadFile(filepath.Join("testdata", "none.b64"))
	if strings.TrimSpace(string(raw)) != "gAROLg==" {
		t.Fatalf("none.b64 = %q", raw)
	}
}

func TestSharedContainersThroughMemo(t *testing.T) {
	// x = []; pickle.dumps((x, x), 4) followed by an append through the
	// memo: both tuple items must be the same list.
	data := []byte("\x80\x04]\x94(K\x01K\x02eh\x00\x86\x94.")
	v, err := Loads(data)
	if err != nil {
		t.Fatal(err)
	}
	tup := v.(Tuple)
	if tup[0].(*List) != tup[1].(*List) || len(*tup[0].(*List)) != 2 {
		t.Fatalf("memo did not share the list: %#v", tup)
	}
}

func TestScalars(t *testing.T) {
	big1, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	cases := []struct {
		name string
		in   string
		want any
	}{
		{"negative BININT", "\x80\x02J\xff\xff\xff\xff.", int64(-1)},
		{"LONG1 negative", "\x80\x02\x8a\x02\x00\xff.", int64(-256)},
		{"LONG1 empty", "\x80\x02\x8a\x00.", int64(0)},
		{"BINFLOAT", "\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.", 1.5},
		{"SHORT_BINBYTES", "\x80\x03C\x02hi.", []byte("hi")},
		{"protocol 0 INT bool", "I01\n.", true},
		{"protocol 0 LONG", "L" + big1.String() + "L\n.", big1},
		{"protocol 0 STRING", "S'a\\nb'\n.", "a\nb"},
		{"protocol 0 UNICODE", "V\\u00e9t\\u00e9\n.", "été"},
		{"frozenset", "\x80\x04(K\x01\x91.", &Set{Items: []any{int64(1)}, Frozen: true}},
		{"set", "\x80\x04\x8f(K\x01K\x02\x90.", &Set{Items: []any{int64(1), int64(2)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Loads([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if bi, ok := c.want.(*big.Int); ok {
				if v.(*big.Int).Cmp(bi) != 0 {
					t.Fatalf("got %v", v)
				}
				return
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Fatalf("got %#v, want %#v", v, c.want)
			}
		})
	}
}

func TestErrorsNameOpcodeAndOffset(t *testing.T) {
	cases := []struct {
		in, op string
		offset int
	}{
		{"\x80\x04h\x05.", "BINGET", 2},
		{"\x80\x04\x8c\x10ab", "SHORT_BINUNICODE", 2},
		{"\x80\x04\xff", "unknown opcode", 2},
		{"\x80\x04e.", "APPENDS", 2},
		{"\x80\x04N\x95\xff\xff\xff\xff\xff\xff\xff\xff", "FRAME", 3},
		{"\x80\x04NN.", "STOP", 4},
		{"\x80\x04Q.", "BINPERSID", 2},
	}
	for _, c := range cases {
		_, err := Loads([]byte(c.in))
		var perr *Error
		if !errors.As(err, &perr) {
			t.Fatalf("%q: error %v is not *Error", c.in, err)
		}
		if perr.Name != c.op || perr.Offset != c.offset {
			t.Errorf("%q: got %s at %d, want %s at %d (%v)", c.in, perr.Name, perr.Offset, c.op, c.offset, err)
		}
		if !strings.Contains(err.Error(), c.op) {
			t.Errorf("message %q does not name %s", err, c.op)
		}
	}
	if _, err := Loads([]byte("\x80\x04N")); !errors.Is(err, ErrTruncated) {
		t.Errorf("missing STOP: %v", err)
	}
}

func TestDumpsRoundTrip(t *testing.T) {
	d := NewDict()
	d.Set("k", Tuple{"a", int64(1)})
	d.Set(int64(7), nil)
	l := List{"x", "x", int64(-70000), int64(1 << 40), 2.5, true, []byte{0, 1}}
	obj := &Object{Module: "m.n", Name: "C", State: d}
	v := Tuple{&l, obj, obj, &Set{Items: []any{"s"}}, Global{Module: "a", Name: "B"}, Tuple{int64(1), int64(2), int64(3), int64(4)}}
	raw, err := Dumps(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Loads(raw)
	if err != nil {
		t.Fatal(err)
	}
	gt := got.(Tuple)
	if gt[1].(*Object) != gt[2].(*Object) {
		t.Error("shared object not shared after round trip")
	}
	if !reflect.DeepEqual(*gt[0].(*List), l) {
		t.Errorf("list: %#v", *gt[0].(*List))
	}
	if s, _ := gt[1].(*Object).Attr("k"); !reflect.DeepEqual(s, Tuple{"a", int64(1)}) {
		t.Errorf("attr k = %#v", s)
	}
	if !reflect.DeepEqual(gt[5], Tuple{int64(1), int64(2), int64(3), int64(4)}) {
		t.Errorf("tuple4 %#v", gt[5])
	}
	for _, n := range []int64{0, 255, 256, 65535, 65536, -1, 1<<31 - 1, -1 << 31, 1 << 31, -1<<31 - 1, 1<<63 - 1, -1 << 63} {
		raw, err := Dumps(n)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Loads(raw)
		if err != nil || back != n {
			t.Errorf("%d round-tripped to %v (%v)", n, back, err)
		}
	}
}

// TestDumpsMatchesCPython compares the encoder's bytes with CPython's for a
// value whose layout exercises memoised strings, tuples, lists and dicts.
func TestDumpsMatchesCPython(t *testing.T) {
	py := `import pickle,sys,base64
s = 'shared'
v = (s, s, [1, 300, 70000, -5, 2**40, 1.5, None, True], {'a': (s,), 'b': b'xy'}, (1, 2, 3, 4), ())
sys.stdout.write(base64.b64encode(pickle.dumps(v, protocol=4)).decode())`
	out, err := exec.Command("python3", "-c", py).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	want, _ := base64.StdEncoding.DecodeString(string(out))
	d := NewDict()
	d.Set("a", Tuple{"shared"})
	d.Set("b", []byte("xy"))
	v := Tuple{"shared", "shared", &List{int64(1), int64(300), int64(70000), int64(-5), int64(1 << 40), 1.5, nil, true}, d, Tuple{int64(1), int64(2), int64(3), int64(4)}, Tuple{}}
	got, err := Dumps(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("bytes differ\n got %q\nwant %q", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.pkl"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x80\x04N."))
	f.Add([]byte("\x80\x04]\x94(K\x01K\x02eh\x00\x86\x94."))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Loads(data)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error of unexpected shape: %v", err)
			}
			return
		}
		_ = v
	})
}
