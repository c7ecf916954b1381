package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// schemaFile is where the schema is written, relative to the module root.
const schemaFile = "router/salesiq.go"

// eventType is the schema's root: the view of one event.
const eventType = "SalesIQEvent"

// field is one field of a schema type, as its tags describe it.
type field struct {
	goName string // Go field name
	key    string // the view's key (expr tag)
	typ    string // Go type, as written
	from   string // request, derived, body, envelope, entity, member
	member string // the member read, for envelope, entity (a struct) and member
	rating bool   // normalised by NormalizeRating
	strct  *structType
}

// structType is a schema type: the event or one of the structs in it.
type structType struct {
	name   string
	fields []field
	// picked is how a nested struct finds its members: true when it
	// picks them from its own node (entity.KEY), false when they are
	// the entity's (entity).
	picked bool
	used   bool
}

// sortedFields is the fields in the view's key order (a map encodes
// with sorted keys).
func (s *structType) sortedFields() []field {
	fs := slices.Clone(s.fields)
	slices.SortFunc(fs, func(a, b field) int { return strings.Compare(a.key, b.key) })
	return fs
}

// keys is the members the struct's fields read, sorted, without
// repeats.
func (s *structType) keys() []string {
	var ks []string
	for _, f := range s.fields {
		ks = append(ks, f.member)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// schema is the parsed schema: the event type and the struct types.
type schema struct {
	event   *structType
	structs map[string]*structType
}

// loadSchema parses the schema file under root and checks every tag.
func loadSchema(root string) (*schema, error) {
	path := filepath.Join(root, schemaFile)
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	s := &schema{structs: map[string]*structType{}}
	var order []*structType
	var errs []string
	ast.Inspect(file, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		t := &structType{name: ts.Name.Name}
		for _, f := range st.Fields.List {
			fd, err := parseField(f)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s.%v: %v", fset.Position(f.Pos()), t.name, f.Names, err))
				continue
			}
			t.fields = append(t.fields, fd)
		}
		s.structs[t.name] = t
		order = append(order, t)
		return false
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	if s.event = s.structs[eventType]; s.event == nil {
		return nil, fmt.Errorf("%s: no type %s", path, eventType)
	}
	if err := s.resolve(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parseField reads one field's name, type and tags.
func parseField(f *ast.Field) (field, error) {
	if len(f.Names) != 1 || f.Tag == nil {
		return field{}, fmt.Errorf("want one named field with expr and salesiq tags")
	}
	tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`"))
	fd := field{goName: f.Names[0].Name, key: tag.Get("expr"), typ: types.ExprString(f.Type)}
	src, ok := tag.Lookup("salesiq")
	if fd.key == "" || !ok {
		return field{}, fmt.Errorf("want expr and salesiq tags")
	}
	src, opt, _ := strings.Cut(src, ",")
	switch opt {
	case "":
	case "rating":
		fd.rating = true
	default:
		return field{}, fmt.Errorf("unknown salesiq option %q", opt)
	}
	head, member, dotted := strings.Cut(src, ".")
	switch {
	case !dotted && (src == "request" || src == "derived" || src == "body" || src == "entity"):
		fd.from = src
	case dotted && (head == "envelope" || head == "entity") && member != "":
		fd.from, fd.member = head, member
	case !dotted && src != "":
		fd.from, fd.member = "member", src
	default:
		return field{}, fmt.Errorf("salesiq:%q says nowhere a value comes from", src)
	}
	return fd, nil
}

// scalarTypes are the Go types a member is read as.
var scalarTypes = []string{"string", "int", "any", "map[string]any", "[]any"}

// resolve checks each field's source against where it is and its type,
// and links struct fields to their types.
func (s *schema) resolve() error {
	var errs []string
	bad := func(t *structType, f field, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s.%s: %s", t.name, f.goName, fmt.Sprintf(format, args...)))
	}
	for i := range s.event.fields {
		s.resolveEventField(&s.event.fields[i], bad)
	}
	for _, t := range s.structs {
		if t == s.event {
			continue
		}
		if !t.used {
			errs = append(errs, fmt.Sprintf("%s: no field of %s reads it", t.name, eventType))
		}
		for _, f := range t.fields {
			checkStructField(t, f, bad)
		}
	}
	if n := len(s.envelopeFields("map[string]any")); n != 1 {
		errs = append(errs, fmt.Sprintf("%s: want exactly one envelope.entity field, have %d", eventType, n))
	}
	slices.Sort(errs)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// problem reports what is wrong with a field of a type.
type problem func(t *structType, f field, format string, args ...any)

// resolveEventField checks one field of the event, and links it to its
// struct type when it is one.
func (s *schema) resolveEventField(f *field, bad problem) {
	switch {
	case f.from == "request" && !slices.Contains([]string{"string", "time.Time", "map[string]string"}, f.typ):
		bad(s.event, *f, "a request field is a string, a time.Time or a map[string]string")
	case f.from == "derived" && f.typ != "string":
		bad(s.event, *f, "a derived field is a string")
	case f.from == "body" && f.typ != "map[string]any":
		bad(s.event, *f, "the body is a map[string]any")
	case f.from == "envelope" && f.member == "entity" && f.typ != "map[string]any":
		bad(s.event, *f, "the entity is a map[string]any")
	case f.from == "envelope" && f.member != "entity" && f.typ != "string" && f.typ != "int":
		bad(s.event, *f, "an envelope field is a string or an int")
	case f.from == "member":
		bad(s.event, *f, "the event's fields name their source: request, derived, body, envelope.KEY, entity or entity.KEY")
	case f.from == "entity":
		t := s.structs[f.typ]
		if t == nil || t == s.event {
			bad(s.event, *f, "an entity field's type is a struct of this schema")
			return
		}
		if t.used && t.picked != (f.member != "") {
			bad(s.event, *f, "%s is read both from the entity and from one of its members", t.name)
		}
		t.used, t.picked, f.strct = true, f.member != "", t
	}
	if f.rating {
		bad(s.event, *f, "only a struct's string field is normalised as a rating")
	}
}

// checkStructField checks one field of a nested struct.
func checkStructField(t *structType, f field, bad problem) {
	switch {
	case f.from != "member":
		bad(t, f, "a struct's field names the member it is read from")
	case !slices.Contains(scalarTypes, f.typ):
		bad(t, f, "type %s; a member is read as one of %s", f.typ, strings.Join(scalarTypes, ", "))
	case f.rating && f.typ != "string":
		bad(t, f, "a rating is a string")
	}
}

// envelopeFields is the event's envelope fields of type typ ("" any).
func (s *schema) envelopeFields(typ string) []field {
	var out []field
	for _, f := range s.event.fields {
		if f.from == "envelope" && (typ == "" || f.typ == typ) {
			out = append(out, f)
		}
	}
	return out
}

// envelopeKeys is the envelope members the writer reads, sorted.
func (s *schema) envelopeKeys() []string {
	var ks []string
	for _, f := range s.envelopeFields("") {
		ks = append(ks, f.member)
	}
	slices.Sort(ks)
	return ks
}

// entityKeys is the entity members the writer picks: those of the
// structs read from the entity itself, and the members that structs are
// read from.
func (s *schema) entityKeys() []string {
	var ks []string
	for _, f := range s.event.fields {
		if f.from != "entity" {
			continue
		}
		if f.member != "" {
			ks = append(ks, f.member)
		} else {
			ks = append(ks, f.strct.keys()...)
		}
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// structsInOrder is the nested struct types sorted by name, so that
// the output does not depend on map order.
func (s *schema) structsInOrder() []*structType {
	var out []*structType
	for _, t := range s.structs {
		if t != s.event {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *structType) int { return strings.Compare(a.name, b.name) })
	return out
}

// camel turns a member name such as visitor_conversation_id into
// VisitorConversationID, for constant names.
func camel(key string) string {
	var b strings.Builder
	for _, part := range strings.Split(key, "_") {
		if part == "id" {
			b.WriteString("ID")
			continue
		}
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// lowerCamel turns a Go field name such as EntityID into entityID, for
// the writer's envelope fields.
func lowerCamel(name string) string {
	n := 0
	for n < len(name) && name[n] >= 'A' && name[n] <= 'Z' {
		n++
	}
	if n > 1 && n < len(name) {
		n-- // the last capital starts the next word: URLPath -> urlPath
	}
	return strings.ToLower(name[:n]) + name[n:]
}
