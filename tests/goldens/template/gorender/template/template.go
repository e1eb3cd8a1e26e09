// Package template renders prompts the way Ollama's template package does (ollama/ollama
// template/template.go at fb307609): text/template with missingkey=zero and Ollama's
// functions, the values Ollama hands to templates (its template-specific message and tool
// types, with the same names and String methods), message collation, and the three ways of
// executing (prompt+suffix, whole conversation through .Messages, legacy per-turn). Written
// for ossy's golden tests; standard library only. The clock is a parameter so that goldens
// are deterministic.
package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	gotemplate "text/template"
	"text/template/parse"
	"time"

	"gorender/api"
)

// Funcs are the functions Ollama adds to every template, with "now" fixed.
func Funcs(now time.Time) gotemplate.FuncMap {
	return gotemplate.FuncMap{
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
		"currentDate": func(args ...string) string {
			return now.Format("2006-01-02")
		},
		"yesterdayDate": func(args ...string) string {
			return now.AddDate(0, 0, -1).Format("2006-01-02")
		},
		"toTypeScriptType": func(v any) string {
			switch p := v.(type) {
			case api.ToolProperty:
				return p.ToTypeScriptType()
			case *api.ToolProperty:
				if p != nil {
					return p.ToTypeScriptType()
				}
			}
			return "any"
		},
	}
}

// Template is a parsed Modelfile TEMPLATE.
type Template struct {
	*gotemplate.Template
}

// Parse parses text as Ollama does, appending {{ .Response }} to templates that use neither
// .Messages nor .Response.
func Parse(name, text string, now time.Time) (*Template, error) {
	tmpl, err := gotemplate.New(name).Option("missingkey=zero").Funcs(Funcs(now)).Parse(text)
	if err != nil {
		return nil, err
	}
	t := &Template{tmpl}
	vars, err := t.Vars()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(vars, "messages") && !slices.Contains(vars, "response") {
		tmpl.Tree.Root.Nodes = append(tmpl.Tree.Root.Nodes, responseNode())
	}
	return t, nil
}

func responseNode() parse.Node {
	field := &parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}
	command := &parse.CommandNode{NodeType: parse.NodeCommand, Args: []parse.Node{field}}
	pipe := &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{command}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pipe: pipe}
}

// Vars lists, lower-cased and sorted, the field and variable names the templates mention.
func (t *Template) Vars() ([]string, error) {
	set := map[string]bool{}
	for _, tt := range t.Templates() {
		for _, n := range tt.Root.Nodes {
			names, err := identifiers(n)
			if err != nil {
				return nil, err
			}
			for _, name := range names {
				set[strings.ToLower(name)] = true
			}
		}
	}
	vars := make([]string, 0, len(set))
	for name := range set {
		vars = append(vars, name)
	}
	slices.Sort(vars)
	return vars, nil
}

func identifiers(n parse.Node) ([]string, error) {
	switch n := n.(type) {
	case *parse.ListNode:
		var names []string
		for _, c := range n.Nodes {
			more, err := identifiers(c)
			if err != nil {
				return names, err
			}
			names = append(names, more...)
		}
		return names, nil
	case *parse.TemplateNode:
		if n.Pipe == nil {
			return nil, errors.New("undefined template specified")
		}
		return identifiers(n.Pipe)
	case *parse.ActionNode:
		return identifiers(n.Pipe)
	case *parse.IfNode:
		return branchIdentifiers(&n.BranchNode)
	case *parse.RangeNode:
		return branchIdentifiers(&n.BranchNode)
	case *parse.WithNode:
		return branchIdentifiers(&n.BranchNode)
	case *parse.PipeNode:
		var names []string
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				more, err := identifiers(a)
				if err != nil {
					return names, err
				}
				names = append(names, more...)
			}
		}
		return names, nil
	case *parse.FieldNode:
		return n.Ident, nil
	case *parse.VariableNode:
		return n.Ident, nil
	}
	return nil, nil
}

func branchIdentifiers(b *parse.BranchNode) ([]string, error) {
	names, err := identifiers(b.Pipe)
	if err != nil {
		return names, err
	}
	for _, list := range []*parse.ListNode{b.List, b.ElseList} {
		if list != nil {
			more, err := identifiers(list)
			if err != nil {
				return names, err
			}
			names = append(names, more...)
		}
	}
	return names, nil
}

// Values are what a request contributes to a prompt.
type Values struct {
	Messages   []api.Message
	Tools      api.Tools
	Prompt     string
	Suffix     string
	Think      bool
	ThinkLevel string
	IsThinkSet bool
}

// Execute renders the prompt, choosing the mode as Ollama does.
func (t *Template) Execute(w io.Writer, v Values) error {
	system, messages := collate(v.Messages)
	vars, err := t.Vars()
	if err != nil {
		return err
	}
	if v.Prompt != "" && v.Suffix != "" {
		return t.Template.Execute(w, map[string]any{
			"Prompt":     v.Prompt,
			"Suffix":     v.Suffix,
			"Response":   "",
			"Think":      v.Think,
			"ThinkLevel": v.ThinkLevel,
			"IsThinkSet": v.IsThinkSet,
		})
	}
	if slices.Contains(vars, "messages") {
		return t.Template.Execute(w, map[string]any{
			"System":     system,
			"Messages":   templateMessages(messages),
			"Tools":      toolsForTemplate(v.Tools),
			"Response":   "",
			"Think":      v.Think,
			"ThinkLevel": v.ThinkLevel,
			"IsThinkSet": v.IsThinkSet,
		})
	}
	return t.executeLegacy(w, v, messages)
}

// executeLegacy runs the template once per user/assistant turn, then once more for the
// last turn with everything after .Response cut away.
func (t *Template) executeLegacy(w io.Writer, v Values, messages []*api.Message) error {
	var b bytes.Buffer
	var system, prompt, response string
	turn := func(tmpl *gotemplate.Template) error {
		return tmpl.Execute(&b, map[string]any{
			"System":     system,
			"Prompt":     prompt,
			"Response":   response,
			"Think":      v.Think,
			"ThinkLevel": v.ThinkLevel,
			"IsThinkSet": v.IsThinkSet,
		})
	}
	flush := func() error {
		if err := turn(t.Template); err != nil {
			return err
		}
		system, prompt, response = "", "", ""
		return nil
	}
	for _, m := range messages {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := flush(); err != nil {
					return err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := flush(); err != nil {
					return err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	cut := false
	root := cutAfterResponse(t.Template.Root.Copy(), &cut)
	last, err := gotemplate.New("").AddParseTree("", &parse.Tree{Root: root.(*parse.ListNode)})
	if err != nil {
		return err
	}
	if err := turn(last); err != nil {
		return err
	}
	_, err = io.Copy(w, &b)
	return err
}

// cutAfterResponse drops every node that follows the first field reference to Response, in
// the order Ollama's deleteNode walks the tree (branch pipelines are not looked into).
func cutAfterResponse(n parse.Node, cut *bool) parse.Node {
	if *cut {
		return nil
	}
	switch n := n.(type) {
	case *parse.FieldNode:
		if slices.Contains(n.Ident, "Response") {
			*cut = true
		}
	case *parse.ListNode:
		var kept []parse.Node
		for _, c := range n.Nodes {
			if c := cutAfterResponse(c, cut); c != nil {
				kept = append(kept, c)
			}
		}
		n.Nodes = kept
	case *parse.IfNode:
		cutBranch(&n.BranchNode, cut)
	case *parse.WithNode:
		cutBranch(&n.BranchNode, cut)
	case *parse.RangeNode:
		cutBranch(&n.BranchNode, cut)
	case *parse.ActionNode:
		pipe := cutAfterResponse(n.Pipe, cut)
		if pipe == nil {
			return nil
		}
		n.Pipe = pipe.(*parse.PipeNode)
	case *parse.PipeNode:
		var commands []*parse.CommandNode
		for _, c := range n.Cmds {
			var args []parse.Node
			for _, a := range c.Args {
				if a := cutAfterResponse(a, cut); a != nil {
					args = append(args, a)
				}
			}
			if len(args) == 0 {
				return nil
			}
			c.Args = args
			commands = append(commands, c)
		}
		if len(commands) == 0 {
			return nil
		}
		n.Cmds = commands
	}
	return n
}

// cutBranch cuts a branch's lists; like Ollama, it fails (panics) when the cut happens in
// the body of a branch that has an else.
func cutBranch(b *parse.BranchNode, cut *bool) {
	b.List = cutAfterResponse(b.List, cut).(*parse.ListNode)
	if b.ElseList != nil {
		b.ElseList = cutAfterResponse(b.ElseList, cut).(*parse.ListNode)
	}
}

// collate merges consecutive messages of one role (tool messages excepted) and joins all
// system messages into one system prompt.
func collate(msgs []api.Message) (string, []*api.Message) {
	var system []string
	var collated []*api.Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func marshalString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type templateTools []templateTool

func (t templateTools) String() string { return marshalString(t) }

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	return marshalString(t)
}

type templateProperties map[string]api.ToolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	return marshalString(t)
}

type templateTool struct {
	Type     string               `json:"type"`
	Items    any                  `json:"items,omitempty"`
	Function templateToolFunction `json:"function"`
}

func (t templateTool) String() string { return marshalString(t) }

type templateToolFunction struct {
	Name        string                         `json:"name"`
	Description string                         `json:"description"`
	Parameters  templateToolFunctionParameters `json:"parameters"`
}

type templateToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}

type templateToolCall struct {
	ID       string
	Function templateToolCallFunction
}

type templateToolCallFunction struct {
	Index     int
	Name      string
	Arguments templateArgs
}

type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []api.ImageData
	ToolCalls  []templateToolCall
	ToolName   string
	ToolCallID string
}

func toolsForTemplate(tools api.Tools) templateTools {
	if tools == nil {
		return nil
	}
	result := make(templateTools, len(tools))
	for i, tool := range tools {
		params := tool.Function.Parameters
		result[i] = templateTool{
			Type:  tool.Type,
			Items: tool.Items,
			Function: templateToolFunction{
				Name:        tool.Function.Name,
				Description: tool.Function.Description,
				Parameters: templateToolFunctionParameters{
					Type:       params.Type,
					Defs:       params.Defs,
					Items:      params.Items,
					Required:   params.Required,
					Properties: templateProperties(params.Properties.ToMap()),
				},
			},
		}
	}
	return result
}

func templateMessages(messages []*api.Message) []*templateMessage {
	if messages == nil {
		return nil
	}
	result := make([]*templateMessage, len(messages))
	for i, msg := range messages {
		var calls []templateToolCall
		for _, tc := range msg.ToolCalls {
			calls = append(calls, templateToolCall{
				ID: tc.ID,
				Function: templateToolCallFunction{
					Index:     tc.Function.Index,
					Name:      tc.Function.Name,
					Arguments: templateArgs(tc.Function.Arguments),
				},
			})
		}
		result[i] = &templateMessage{
			Role:       msg.Role,
			Content:    msg.Content,
			Thinking:   msg.Thinking,
			Images:     msg.Images,
			ToolCalls:  calls,
			ToolName:   msg.ToolName,
			ToolCallID: msg.ToolCallID,
		}
	}
	return result
}
