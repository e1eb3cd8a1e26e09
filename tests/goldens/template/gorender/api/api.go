// Package api declares the request types Ollama decodes chat requests into
// (ollama/ollama api/types.go at fb307609): the same names, fields, JSON tags and
// methods, so templates see exactly what they see inside Ollama. Written for ossy's
// golden tests; standard library only.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Message is one chat message; roles are lower-cased on decoding, as Ollama does.
type Message struct {
	Role       string      `json:"role"`
	Content    string      `json:"content"`
	Thinking   string      `json:"thinking,omitempty"`
	Images     []ImageData `json:"images,omitempty"`
	ToolCalls  []ToolCall  `json:"tool_calls,omitempty"`
	ToolName   string      `json:"tool_name,omitempty"`
	ToolCallID string      `json:"tool_call_id,omitempty"`
}

func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*m = Message(p)
	m.Role = strings.ToLower(m.Role)
	return nil
}

type ImageData []byte

type ToolCall struct {
	ID       string           `json:"id,omitempty"`
	Function ToolCallFunction `json:"function"`
}

// ToolCallFunction keeps Arguments as the plain map Ollama's ToMap() hands to templates.
type ToolCallFunction struct {
	Index     int            `json:"index"`
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

type Tools []Tool

type Tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function ToolFunction `json:"function"`
}

type ToolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Parameters  ToolFunctionParameters `json:"parameters"`
}

type ToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties *ToolPropertiesMap `json:"properties"`
}

// PropertyType is a JSON Schema type: one name or a list of names.
type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*pt = PropertyType{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*pt = many
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

func (pt PropertyType) String() string {
	switch len(pt) {
	case 0:
		return ""
	case 1:
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

// ToolPropertiesMap keeps properties in the order the request gave them.
type ToolPropertiesMap struct {
	om *orderedProperties
}

type orderedProperties struct {
	keys   []string
	values map[string]ToolProperty
}

func (t *ToolPropertiesMap) UnmarshalJSON(data []byte) error {
	om := &orderedProperties{values: map[string]ToolProperty{}}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return err
		}
		var prop ToolProperty
		if err := dec.Decode(&prop); err != nil {
			return err
		}
		name := key.(string)
		if _, seen := om.values[name]; !seen {
			om.keys = append(om.keys, name)
		}
		om.values[name] = prop
	}
	t.om = om
	return nil
}

func (t ToolPropertiesMap) MarshalJSON() ([]byte, error) {
	if t.om == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, key := range t.om.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		v, err := json.Marshal(t.om.values[key])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ToMap is the plain (unordered) map templates range over; nil when absent.
func (t *ToolPropertiesMap) ToMap() map[string]ToolProperty {
	if t == nil || t.om == nil {
		return nil
	}
	m := make(map[string]ToolProperty, len(t.om.keys))
	for _, key := range t.om.keys {
		m[key] = t.om.values[key]
	}
	return m
}

type ToolProperty struct {
	AnyOf       []ToolProperty     `json:"anyOf,omitempty"`
	Type        PropertyType       `json:"type,omitempty"`
	Items       any                `json:"items,omitempty"`
	Description string             `json:"description,omitempty"`
	Enum        []any              `json:"enum,omitempty"`
	Properties  *ToolPropertiesMap `json:"properties,omitempty"`
	Required    []string           `json:"required,omitempty"`
}

// ToTypeScriptType names the property's type in TypeScript: anyOf and type lists become
// unions; unknown or missing types are any.
func (tp ToolProperty) ToTypeScriptType() string {
	if len(tp.AnyOf) > 0 {
		parts := make([]string, 0, len(tp.AnyOf))
		for _, alt := range tp.AnyOf {
			parts = append(parts, alt.ToTypeScriptType())
		}
		return strings.Join(parts, " | ")
	}
	if len(tp.Type) == 0 {
		return "any"
	}
	parts := make([]string, 0, len(tp.Type))
	for _, name := range tp.Type {
		parts = append(parts, typeScriptName(name))
	}
	return strings.Join(parts, " | ")
}

func typeScriptName(jsonType string) string {
	switch jsonType {
	case "string", "boolean", "null":
		return jsonType
	case "number", "integer":
		return "number"
	case "array":
		return "any[]"
	case "object":
		return "Record<string, any>"
	}
	return "any"
}

// ThinkValue is a request's think field: unset, a bool, or a level.
type ThinkValue struct {
	Value any
}

func (t *ThinkValue) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		t.Value = b
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("think must be a boolean or string (\"high\", \"medium\", \"low\", \"max\", true, or false)")
	}
	if s != "high" && s != "medium" && s != "low" && s != "max" {
		return fmt.Errorf("invalid think value: %q (must be \"high\", \"medium\", \"low\", \"max\", true, or false)", s)
	}
	t.Value = s
	return nil
}

// Bool reports whether thinking is on (true or any level).
func (t *ThinkValue) Bool() bool {
	if t == nil {
		return false
	}
	switch v := t.Value.(type) {
	case bool:
		return v
	case string:
		return true
	}
	return false
}

// String is the level: the string given, "medium" for true, "" otherwise.
func (t *ThinkValue) String() string {
	if t == nil {
		return ""
	}
	switch v := t.Value.(type) {
	case string:
		return v
	case bool:
		if v {
			return "medium"
		}
	}
	return ""
}
