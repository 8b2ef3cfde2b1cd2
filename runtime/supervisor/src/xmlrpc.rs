//! Just enough XML-RPC: encoding calls with string/boolean parameters, and decoding
//! `methodResponse` documents (values or faults) with quick-xml.

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use crate::error::CallError;

/// A decoded XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Bool(bool),
    String(String),
    Double(f64),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
    Nil,
}

impl Value {
    pub(crate) fn member(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A parameter of a call; only the kinds the supervisor methods used here take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Str(&'a str),
    Bool(bool),
}

/// Encodes a `methodCall` document.
pub(crate) fn encode_call(method: &str, params: &[Param<'_>]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    out.push_str(&escape(method));
    out.push_str("</methodName><params>");
    for param in params {
        out.push_str("<param><value>");
        match param {
            Param::Str(s) => {
                out.push_str("<string>");
                out.push_str(&escape(*s));
                out.push_str("</string>");
            }
            Param::Bool(b) => {
                out.push_str(if *b {
                    "<boolean>1</boolean>"
                } else {
                    "<boolean>0</boolean>"
                });
            }
        }
        out.push_str("</value></param>");
    }
    out.push_str("</params></methodCall>\n");
    out
}

/// Deep enough for any answer supervisord gives; the bound keeps a hostile server from
/// overflowing the stack of the recursive value decoder.
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
struct Elem {
    name: String,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Elem(Elem),
    Text(String),
}

impl Elem {
    fn elems(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|n| match n {
            Node::Elem(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    fn has_significant_text(&self) -> bool {
        self.children
            .iter()
            .any(|n| matches!(n, Node::Text(t) if !t.trim().is_empty()))
    }

    /// The only child element, with nothing but whitespace around it.
    fn only_child(&self, expected: &str) -> Result<&Elem, CallError> {
        let mut elems = self.elems();
        match (elems.next(), elems.next()) {
            (Some(e), None) if e.name == expected && !self.has_significant_text() => Ok(e),
            _ => Err(malformed(format!(
                "<{}> must contain exactly one <{expected}>",
                self.name
            ))),
        }
    }
}

fn malformed(what: impl Into<String>) -> CallError {
    CallError::Malformed(what.into())
}

fn push_text(stack: &mut [Elem], text: &str) -> Result<(), CallError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the document element")),
    }
}

fn parse_tree(xml: &str) -> Result<Elem, CallError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<Elem> = None;
    let xml_err = |e: quick_xml::Error| malformed(format!("invalid XML: {e}"));
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        let is_empty = matches!(event, Event::Empty(_));
        let finished = match event {
            Event::Start(start) | Event::Empty(start) => {
                if root.is_some() {
                    return Err(malformed("content after the document element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(format!(
                        "nested deeper than {MAX_DEPTH} elements"
                    )));
                }
                let name = std::str::from_utf8(start.name().as_ref())
                    .map_err(|_| malformed("element name is not UTF-8"))?
                    .to_owned();
                let elem = Elem {
                    name,
                    children: Vec::new(),
                };
                if is_empty {
                    Some(elem)
                } else {
                    stack.push(elem);
                    None
                }
            }
            Event::End(_) => {
                // quick-xml has already checked that the end tag matches.
                Some(stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?)
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|e| malformed(format!("invalid text: {e}")))?;
                push_text(&mut stack, &text)?;
                None
            }
            Event::CData(cdata) => {
                let text = cdata
                    .decode()
                    .map_err(|e| malformed(format!("invalid CDATA: {e}")))?;
                push_text(&mut stack, &text)?;
                None
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference
                            .decode()
                            .map_err(|e| malformed(format!("invalid entity: {e}")))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => return Err(malformed(format!("unknown entity &{name};"))),
                        }
                    }
                    Err(e) => return Err(malformed(format!("invalid character reference: {e}"))),
                };
                push_text(&mut stack, &resolved)?;
                None
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => None,
        };
        if let Some(elem) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(Node::Elem(elem)),
                None => root = Some(elem),
            }
        }
    }
    if !stack.is_empty() {
        return Err(malformed("document ends inside an element"));
    }
    root.ok_or_else(|| malformed("empty document"))
}

fn decode_value(value: &Elem) -> Result<Value, CallError> {
    let mut elems = value.elems();
    let typed = match (elems.next(), elems.next()) {
        // XML-RPC: a <value> without a type element is a string, whitespace included.
        (None, _) => return Ok(Value::String(value.text())),
        (Some(e), None) if !value.has_significant_text() => e,
        _ => {
            return Err(malformed(
                "<value> must hold one typed element or plain text",
            ));
        }
    };
    let scalar_text = |e: &Elem| -> Result<String, CallError> {
        if e.elems().next().is_some() {
            return Err(malformed(format!("<{}> must contain only text", e.name)));
        }
        Ok(e.text())
    };
    Ok(match typed.name.as_str() {
        "string" => Value::String(scalar_text(typed)?),
        "int" | "i4" | "i8" => {
            let text = scalar_text(typed)?;
            Value::Int(
                text.trim()
                    .parse()
                    .map_err(|_| malformed(format!("bad integer {text:?}")))?,
            )
        }
        "boolean" => match scalar_text(typed)?.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            other => return Err(malformed(format!("bad boolean {other:?}"))),
        },
        "double" => {
            let text = scalar_text(typed)?;
            Value::Double(
                text.trim()
                    .parse()
                    .map_err(|_| malformed(format!("bad double {text:?}")))?,
            )
        }
        "nil" => Value::Nil,
        "array" => {
            let data = typed.only_child("data")?;
            if data.has_significant_text() {
                return Err(malformed("text inside <data>"));
            }
            let mut items = Vec::new();
            for item in data.elems() {
                if item.name != "value" {
                    return Err(malformed(format!("<{}> inside <data>", item.name)));
                }
                items.push(decode_value(item)?);
            }
            Value::Array(items)
        }
        "struct" => {
            if typed.has_significant_text() {
                return Err(malformed("text inside <struct>"));
            }
            let mut members = Vec::new();
            for member in typed.elems() {
                if member.name != "member" || member.has_significant_text() {
                    return Err(malformed(format!("<{}> inside <struct>", member.name)));
                }
                let mut name = None;
                let mut val = None;
                for part in member.elems() {
                    match part.name.as_str() {
                        "name" if name.is_none() => name = Some(scalar_text(part)?),
                        "value" if val.is_none() => val = Some(decode_value(part)?),
                        other => return Err(malformed(format!("<{other}> inside <member>"))),
                    }
                }
                match (name, val) {
                    (Some(n), Some(v)) => members.push((n, v)),
                    _ => return Err(malformed("<member> needs a <name> and a <value>")),
                }
            }
            Value::Struct(members)
        }
        other => return Err(malformed(format!("unsupported XML-RPC type <{other}>"))),
    })
}

/// Decodes a `methodResponse`: the single returned value, or the fault as
/// [`CallError::Fault`].
pub(crate) fn parse_response(xml: &str) -> Result<Value, CallError> {
    let root = parse_tree(xml)?;
    if root.name != "methodResponse" {
        return Err(malformed(format!(
            "expected <methodResponse>, got <{}>",
            root.name
        )));
    }
    let mut elems = root.elems();
    let body = match (elems.next(), elems.next()) {
        (Some(b), None) if !root.has_significant_text() => b,
        _ => {
            return Err(malformed(
                "<methodResponse> must contain one <params> or <fault>",
            ));
        }
    };
    match body.name.as_str() {
        "params" => {
            let param = body.only_child("param")?;
            decode_value(param.only_child("value")?)
        }
        "fault" => {
            let fault = decode_value(body.only_child("value")?)?;
            let code = match fault.member("faultCode") {
                Some(Value::Int(c)) => i32::try_from(*c)
                    .map_err(|_| malformed(format!("faultCode {c} out of range")))?,
                _ => return Err(malformed("fault without an integer faultCode")),
            };
            let message = match fault.member("faultString") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(malformed("fault without a string faultString")),
            };
            Err(CallError::Fault(code, message))
        }
        other => Err(malformed(format!(
            "expected <params> or <fault>, got <{other}>"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(xml: &str) -> Value {
        parse_response(xml).unwrap()
    }

    fn malformed_msg(xml: &str) -> String {
        match parse_response(xml) {
            Err(CallError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn encodes_and_escapes_parameters() {
        let xml = encode_call(
            "supervisor.startProcess",
            &[
                Param::Str("a<b>&\"c'"),
                Param::Bool(true),
                Param::Bool(false),
            ],
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.startProcess</methodName>\
             <params><param><value><string>a&lt;b&gt;&amp;&quot;c&apos;</string></value></param>\
             <param><value><boolean>1</boolean></value></param>\
             <param><value><boolean>0</boolean></value></param></params></methodCall>\n"
        );
    }

    #[test]
    fn encoded_strings_round_trip_through_the_decoder() {
        let tricky = "web]]> &amp; <x/> \u{e9}\u{1F600}";
        let call = encode_call("m", &[Param::Str(tricky)]);
        // Reuse the response decoder on the same <value> markup.
        let start = call.find("<value>").unwrap();
        let end = call.rfind("</value>").unwrap() + "</value>".len();
        let response = format!(
            "<methodResponse><params><param>{}</param></params></methodResponse>",
            &call[start..end]
        );
        assert_eq!(ok(&response), Value::String(tricky.to_owned()));
    }

    #[test]
    fn decodes_what_python_xmlrpclib_emits() {
        // Shape of supervisord's getProcessInfo answer (xmlrpclib.dumps, methodresponse=1).
        let xml = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n\
            <member>\n<name>name</name>\n<value><string>web</string></value>\n</member>\n\
            <member>\n<name>pid</name>\n<value><int>4242</int></value>\n</member>\n\
            <member>\n<name>description</name>\n<value><string>pid 4242, uptime 0:00:03 &amp; &lt;more&gt; &#233;</string></value>\n</member>\n\
            <member>\n<name>bare</name>\n<value>  spaced text </value>\n</member>\n\
            <member>\n<name>empty</name>\n<value><string/></value>\n</member>\n\
            <member>\n<name>i4</name>\n<value><i4>-7</i4></value>\n</member>\n\
            <member>\n<name>ok</name>\n<value><boolean>1</boolean></value>\n</member>\n\
            <member>\n<name>list</name>\n<value><array><data>\n<value><int>1</int></value>\n<value>two</value>\n</data></array></value>\n</member>\n\
            <member>\n<name>nil</name>\n<value><nil/></value>\n</member>\n\
            <member>\n<name>dbl</name>\n<value><double>1.5</double></value>\n</member>\n\
            </struct></value>\n</param>\n</params>\n</methodResponse>\n";
        let v = ok(xml);
        assert_eq!(v.member("name"), Some(&Value::String("web".into())));
        assert_eq!(v.member("pid"), Some(&Value::Int(4242)));
        assert_eq!(
            v.member("description"),
            Some(&Value::String(
                "pid 4242, uptime 0:00:03 & <more> \u{e9}".into()
            ))
        );
        assert_eq!(
            v.member("bare"),
            Some(&Value::String("  spaced text ".into()))
        );
        assert_eq!(v.member("empty"), Some(&Value::String(String::new())));
        assert_eq!(v.member("i4"), Some(&Value::Int(-7)));
        assert_eq!(v.member("ok"), Some(&Value::Bool(true)));
        assert_eq!(
            v.member("list"),
            Some(&Value::Array(vec![
                Value::Int(1),
                Value::String("two".into())
            ]))
        );
        assert_eq!(v.member("nil"), Some(&Value::Nil));
        assert_eq!(v.member("dbl"), Some(&Value::Double(1.5)));
        assert_eq!(v.member("absent"), None);
    }

    #[test]
    fn decodes_faults() {
        let xml = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
            <member>\n<name>faultCode</name>\n<value><int>10</int></value>\n</member>\n\
            <member>\n<name>faultString</name>\n<value><string>BAD_NAME: w&lt;eb</string></value>\n</member>\n\
            </struct></value>\n</fault>\n</methodResponse>\n";
        match parse_response(xml) {
            Err(CallError::Fault(10, msg)) => assert_eq!(msg, "BAD_NAME: w<eb"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_documents() {
        assert!(malformed_msg("").contains("empty document"));
        assert!(malformed_msg("<methodResponse>").contains("ends inside"));
        assert!(malformed_msg("<methodCall/>").contains("expected <methodResponse>"));
        assert!(
            malformed_msg("<methodResponse><params></params></methodResponse>")
                .contains("exactly one <param>")
        );
        assert!(malformed_msg(
            "<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>"
        )
        .contains("bad integer"));
        assert!(malformed_msg(
            "<methodResponse><params><param><value><boolean>2</boolean></value></param></params></methodResponse>"
        )
        .contains("bad boolean"));
        assert!(malformed_msg(
            "<methodResponse><params><param><value><base64>AA==</base64></value></param></params></methodResponse>"
        )
        .contains("unsupported XML-RPC type <base64>"));
        assert!(malformed_msg(
            "<methodResponse><params><param><value>&bogus;</value></param></params></methodResponse>"
        )
        .contains("unknown entity"));
        assert!(
            malformed_msg("<methodResponse><params></wrong></methodResponse>")
                .contains("invalid XML")
        );
        assert!(malformed_msg("<methodResponse/><extra/>").contains("after the document element"));
        assert!(
            malformed_msg(
                "<methodResponse><fault><value><struct></struct></value></fault></methodResponse>"
            )
            .contains("faultCode")
        );
        assert!(malformed_msg(
            "<methodResponse><params><param><value><struct><member><name>a</name></member></struct></value></param></params></methodResponse>"
        )
        .contains("needs a <name> and a <value>"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let depth = 100_000;
        let xml = format!(
            "<methodResponse><params><param>{}{}</param></params></methodResponse>",
            "<value><array><data>".repeat(depth),
            "</data></array></value>".repeat(depth)
        );
        assert!(malformed_msg(&xml).contains("nested deeper than"));
    }
}
