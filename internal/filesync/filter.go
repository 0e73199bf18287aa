package filesync

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Filter is a parsed list of filter rules.
type Filter struct {
	rules []rule
}

type ruleKind int

const (
	kindExclude ruleKind = iota
	kindInclude
	kindDirMerge
	kindClear
)

type sideMask uint8

const (
	senderBit   sideMask = 1 << Sender
	receiverBit sideMask = 1 << Receiver
	bothSides            = senderBit | receiverBit
)

type mergeStyle int

const (
	mergeRules       mergeStyle = iota // each line is a filter rule
	mergeGitExcludes                   // gitignore syntax: patterns exclude, !pattern includes
	mergeIncludes                      // each line is an include pattern
)

type rule struct {
	kind   ruleKind
	sides  sideMask
	negate bool

	// Include/exclude.
	dirOnly  bool
	baseOnly bool // match the last path component only
	re       *regexp.Regexp

	// Dir-merge.
	mergeFile   string
	style       mergeStyle
	excludeSelf bool
}

var longKinds = map[string]byte{
	"exclude": '-', "include": '+', "hide": 'H', "show": 'S', "protect": 'P',
	"risk": 'R', "dir-merge": ':', "merge": '.', "clear": '!',
}

// ParseFilter parses filter rules; callers can use it to reject bad rules
// before a transfer. Rules are rsync-style, one per string,
// "KIND[,MODIFIERS] PATTERN" or the short "K[MODIFIERS] PATTERN":
//
//	exclude PATTERN    (- PATTERN)  exclude matching paths (on both sides)
//	include PATTERN    (+ PATTERN)  include matching paths (stop looking further)
//	hide PATTERN       (H PATTERN)  exclude on the sending side only
//	show PATTERN       (S PATTERN)  include on the sending side only
//	protect PATTERN    (P PATTERN)  keep matching destination paths from deletion
//	risk PATTERN       (R PATTERN)  let matching destination paths be deleted
//	dir-merge FILE     (: FILE)     read rules from FILE in every directory
//	clear              (!)          forget the rules given so far
//
// Modifiers of the include/exclude kinds: "s" (sender side only), "r"
// (receiver side only), "!" (the rule applies to paths that do NOT match),
// "p" (accepted and ignored). Modifiers of dir-merge: "-" (FILE holds
// gitignore-style exclude patterns, with "!pattern" re-including, later lines
// overriding earlier ones, exactly as git reads .gitignore), "+" (FILE holds
// include patterns), "e" (exclude FILE itself from the transfer), "s", "r".
// So "dir-merge,- .gitignore" and ":- .gitignore" honour .gitignore files.
// Blank rules and rules starting with "#" or ";" are ignored. "merge FILE"
// (a one-off merge file) is not supported: the caller reads the file and
// passes its lines.
//
// Rules are checked in order and the first match decides; a path no rule
// matches is included. Rules read from a per-directory file apply to that
// directory's contents, below it, and sit at the position of their dir-merge
// rule, a deeper directory's rules before its parent's.
//
// Patterns follow rsync and gitignore: "*" matches within one path component,
// "**" across components, "?" one character, "[...]" a class, "\" escapes.
// A trailing "/" matches directories only; "dir/***" matches dir and
// everything in it. A pattern with no "/" (other than a trailing one) matches
// the final component of a path at any depth. A leading "/" anchors the
// pattern at the transfer root (or at the directory of the file it was read
// from). Other patterns containing "/" match the whole path: anchored in
// gitignore-style files (as git does), at any depth in rsync rules (as rsync
// does, so "- a/b" also excludes "x/a/b"). An excluded directory is not
// descended into, so nothing below it can be re-included.
func ParseFilter(rules []string) (*Filter, error) {
	var f Filter
	for _, s := range rules {
		r, ok, err := parseRule(s)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if r.kind == kindClear {
			f.rules = f.rules[:0]
			continue
		}
		f.rules = append(f.rules, r)
	}
	return &f, nil
}

// parseRule parses one rsync-style rule. ok is false for blank lines and comments.
func parseRule(s string) (r rule, ok bool, err error) {
	s = strings.TrimLeft(s, " \t")
	s = strings.TrimRight(s, "\r\n")
	if s == "" || s[0] == '#' || s[0] == ';' {
		return rule{}, false, nil
	}
	head, arg, hasArg := strings.Cut(s, " ")
	if !hasArg {
		// rsync also accepts "_" between the rule and its argument.
		if h, a, found := strings.Cut(s, "_"); found && h != "" {
			if _, isLong := longKinds[strings.SplitN(h, ",", 2)[0]]; isLong || len(h) <= 3 {
				head, arg, hasArg = h, a, true
			}
		}
	}
	var kind byte
	var mods string
	if name, m, found := strings.Cut(head, ","); found {
		k, known := longKinds[name]
		if !known && len(name) == 1 {
			k, known = name[0], true
		}
		if !known {
			return rule{}, false, fmt.Errorf("filesync: filter rule %q: unknown rule kind %q", s, name)
		}
		kind, mods = k, m
	} else if k, known := longKinds[head]; known {
		kind = k
	} else {
		kind, mods = head[0], head[1:]
	}

	r = rule{sides: bothSides}
	switch kind {
	case '-', '+', 'H', 'S', 'P', 'R':
		r.kind = kindExclude
		if kind == '+' || kind == 'S' || kind == 'R' {
			r.kind = kindInclude
		}
		switch kind {
		case 'H', 'S':
			r.sides = senderBit
		case 'P', 'R':
			r.sides = receiverBit
		}
		for _, m := range mods {
			switch m {
			case 's':
				r.sides &= senderBit
			case 'r':
				r.sides &= receiverBit
			case '!':
				r.negate = true
			case 'p':
			default:
				return rule{}, false, fmt.Errorf("filesync: filter rule %q: unsupported modifier %q", s, m)
			}
		}
		if !hasArg || arg == "" {
			return rule{}, false, fmt.Errorf("filesync: filter rule %q: missing pattern", s)
		}
		if err := r.compile(arg, false); err != nil {
			return rule{}, false, fmt.Errorf("filesync: filter rule %q: %w", s, err)
		}
	case ':':
		r.kind = kindDirMerge
		for _, m := range mods {
			switch m {
			case '-':
				r.style = mergeGitExcludes
			case '+':
				r.style = mergeIncludes
			case 'e':
				r.excludeSelf = true
			case 's':
				r.sides &= senderBit
			case 'r':
				r.sides &= receiverBit
			default:
				return rule{}, false, fmt.Errorf("filesync: filter rule %q: unsupported dir-merge modifier %q", s, m)
			}
		}
		if !hasArg || arg == "" || strings.Contains(arg, "/") || arg == "." || arg == ".." {
			return rule{}, false, fmt.Errorf("filesync: filter rule %q: dir-merge needs a plain file name", s)
		}
		r.mergeFile = arg
	case '!':
		if mods != "" || (hasArg && strings.TrimSpace(arg) != "") {
			return rule{}, false, fmt.Errorf("filesync: filter rule %q: clear takes no argument", s)
		}
		r.kind = kindClear
	case '.':
		return rule{}, false, fmt.Errorf("filesync: filter rule %q: merge files are not supported; pass their rules directly", s)
	default:
		return rule{}, false, fmt.Errorf("filesync: filter rule %q: unknown rule kind %q", s, head)
	}
	return r, true, nil
}

// parseMergeFile turns the content of a per-directory merge file into rules,
// already in first-match-wins order.
func parseMergeFile(data string, style mergeStyle) ([]rule, error) {
	var out []rule
	for line := range strings.Lines(data) {
		line = strings.TrimRight(line, "\r\n")
		switch style {
		case mergeRules:
			r, ok, err := parseRule(line)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			switch r.kind {
			case kindClear:
				out = out[:0]
				continue
			case kindDirMerge:
				return nil, fmt.Errorf("filesync: nested dir-merge rule %q is not supported", line)
			}
			out = append(out, r)
		default:
			line = trimGitSpaces(line)
			if line == "" || line[0] == '#' {
				continue
			}
			r := rule{kind: kindExclude, sides: bothSides}
			if style == mergeIncludes {
				r.kind = kindInclude
			} else if line[0] == '!' {
				r.kind = kindInclude
				line = line[1:]
			}
			if line == "" {
				continue
			}
			if err := r.compile(line, true); err != nil {
				return nil, fmt.Errorf("filesync: pattern %q: %w", line, err)
			}
			out = append(out, r)
		}
	}
	if style != mergeRules {
		// In gitignore files the last matching pattern wins; rules here are
		// first-match-wins, so reverse them.
		slices.Reverse(out)
	}
	return out, nil
}

// trimGitSpaces removes trailing spaces unless escaped with a backslash, as
// git does.
func trimGitSpaces(s string) string {
	for strings.HasSuffix(s, " ") && !strings.HasSuffix(s, "\\ ") {
		s = s[:len(s)-1]
	}
	return s
}

// compile translates a glob pattern into the rule's matcher. gitStyle selects
// gitignore's anchoring of patterns that contain a slash.
func (r *rule) compile(pat string, gitStyle bool) error {
	if strings.HasSuffix(pat, "/") {
		r.dirOnly = true
		pat = strings.TrimRight(pat, "/")
	}
	anchored := strings.HasPrefix(pat, "/")
	if anchored {
		pat = strings.TrimLeft(pat, "/")
	}
	if pat == "" {
		return errors.New("empty pattern")
	}
	hasSlash := strings.Contains(pat, "/")
	r.baseOnly = !anchored && !hasSlash && !strings.Contains(pat, "**")

	var b strings.Builder
	b.WriteString("^")
	if !r.baseOnly && !anchored && !(gitStyle && hasSlash) {
		b.WriteString("(?:.*/)?")
	}
	if err := globToRegexp(&b, pat); err != nil {
		return err
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return fmt.Errorf("bad pattern: %w", err)
	}
	r.re = re
	return nil
}

// globToRegexp appends the regular expression equivalent of glob to b.
func globToRegexp(b *strings.Builder, glob string) error {
	for i := 0; i < len(glob); {
		c := glob[i]
		switch c {
		case '\\':
			if i+1 < len(glob) {
				b.WriteString(regexp.QuoteMeta(glob[i+1 : i+2]))
				i += 2
			} else {
				b.WriteString(`\\`)
				i++
			}
		case '*':
			n := 0
			for i+n < len(glob) && glob[i+n] == '*' {
				n++
			}
			atStart := i == 0 || glob[i-1] == '/'
			end := i + n
			switch {
			case n == 1:
				b.WriteString("[^/]*")
			case n == 3 && end == len(glob) && i > 0 && glob[i-1] == '/':
				// "dir/***": the directory and everything in it.
				s := b.String()
				b.Reset()
				b.WriteString(strings.TrimSuffix(s, "/"))
				b.WriteString("(?:/.*)?")
			case atStart && end < len(glob) && glob[end] == '/':
				// "**/": zero or more leading directories.
				b.WriteString("(?:.*/)?")
				end++
			default:
				b.WriteString(".*")
			}
			i = end
		case '?':
			b.WriteString("[^/]")
			i++
		case '[':
			j, class := parseClass(glob, i)
			if j < 0 {
				b.WriteString(`\[`)
				i++
				continue
			}
			b.WriteString(class)
			i = j
		default:
			j := i
			for j < len(glob) && !strings.ContainsRune(`\*?[`, rune(glob[j])) {
				j++
			}
			b.WriteString(regexp.QuoteMeta(glob[i:j]))
			i = j
		}
	}
	return nil
}

// parseClass translates the bracket expression starting at glob[i] == '['. It
// returns the index after the closing bracket, or -1 if there is none.
func parseClass(glob string, i int) (int, string) {
	j := i + 1
	var b strings.Builder
	b.WriteString("[")
	negate := j < len(glob) && (glob[j] == '!' || glob[j] == '^')
	if negate {
		b.WriteString("^/")
		j++
	}
	first := true
	for ; j < len(glob); j++ {
		c := glob[j]
		switch {
		case c == ']' && !first:
			b.WriteString("]")
			return j + 1, b.String()
		case c == '\\' && j+1 < len(glob):
			j++
			b.WriteString(regexp.QuoteMeta(glob[j : j+1]))
			if glob[j] == '-' || glob[j] == '^' || glob[j] == ']' {
				// QuoteMeta leaves these bare; inside a class they are special.
				s := b.String()
				b.Reset()
				b.WriteString(s[:len(s)-1] + `\` + s[len(s)-1:])
			}
		case c == '-':
			b.WriteString("-")
		case c == '[' && j+1 < len(glob) && glob[j+1] == ':':
			// POSIX character class such as [:alpha:].
			end := strings.Index(glob[j+2:], ":]")
			if end < 0 {
				return -1, ""
			}
			name := glob[j+2 : j+2+end]
			if !posixClasses[name] {
				return -1, ""
			}
			b.WriteString("[:" + name + ":]")
			j += 2 + end + 1
		default:
			if c == ']' || c == '^' || c == '[' || c == '\\' {
				b.WriteString(`\`)
			}
			b.WriteByte(c)
		}
		first = false
	}
	return -1, ""
}

var posixClasses = map[string]bool{
	"alnum": true, "alpha": true, "ascii": true, "blank": true, "cntrl": true,
	"digit": true, "graph": true, "lower": true, "print": true, "punct": true,
	"space": true, "upper": true, "word": true, "xdigit": true,
}

// matches reports whether the rule's pattern matches rel (relative to the
// rule's base directory).
func (r *rule) matches(rel string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return r.negate
	}
	target := rel
	if r.baseOnly {
		target = path.Base(rel)
	}
	return r.re.MatchString(target) != r.negate
}

// mergeLayer holds the rules read from the merge files of one directory.
type mergeLayer struct {
	dir   string         // relative to the walk root; "" for the root
	rules map[int][]rule // by index of the dir-merge rule in Filter.rules
}

// Excluded reports whether the rules exclude path (slash-separated, relative
// to the transfer root) on the given side, ignoring per-directory merge files.
func (f *Filter) Excluded(path string, isDir bool, side Side) bool {
	return f.excluded(nil, path, isDir, side)
}

func (f *Filter) excluded(layers []mergeLayer, rel string, isDir bool, side Side) bool {
	bit := sideMask(1) << side
	for i := range f.rules {
		r := &f.rules[i]
		if r.sides&bit == 0 {
			continue
		}
		if r.kind != kindDirMerge {
			if r.matches(rel, isDir) {
				return r.kind == kindExclude
			}
			continue
		}
		if r.excludeSelf && !isDir && path.Base(rel) == r.mergeFile {
			return true
		}
		for l := len(layers) - 1; l >= 0; l-- {
			sub := rel
			if d := layers[l].dir; d != "" {
				sub = strings.TrimPrefix(rel, d+"/")
			}
			for j := range layers[l].rules[i] {
				mr := &layers[l].rules[i][j]
				if mr.sides&bit != 0 && mr.matches(sub, isDir) {
					return mr.kind == kindExclude
				}
			}
		}
	}
	return false
}

// mergeFiles returns, by rule index, the dir-merge files that apply on side.
func (f *Filter) mergeFiles(side Side) map[int]string {
	var m map[int]string
	for i, r := range f.rules {
		if r.kind == kindDirMerge && r.sides&(sideMask(1)<<side) != 0 {
			if m == nil {
				m = map[int]string{}
			}
			m[i] = r.mergeFile
		}
	}
	return m
}
