//! Descriptions of a chain's structure, from [`Chain::inspect`], and their
//! rendering as Mermaid flowcharts.
//!
//! [`Chain::inspect`]: crate::Chain::inspect

use std::fmt::Write as _;

use serde::Serialize;

/// The structure of a chain: its links, middleware and error handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainDescription {
    /// The chain's name.
    pub name: String,
    /// Names of the middleware around every link
    /// ([`Chain::around_each`](crate::Chain::around_each)), outermost first.
    pub around_each: Vec<String>,
    /// Names of the middleware around the whole execution
    /// ([`Chain::around`](crate::Chain::around)), outermost first.
    pub around: Vec<String>,
    /// Names of the observers, in registration order.
    pub observers: Vec<String>,
    /// Name of the chain-wide error handler, if any.
    pub catch: Option<String>,
    /// The links in order.
    pub links: Vec<LinkDescription>,
}

/// One link of a described chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkDescription {
    /// Position in the chain.
    pub index: usize,
    /// The link's name.
    pub name: String,
    /// What kind of link it is.
    pub kind: LinkKind,
    /// Whether it runs only when a condition holds.
    pub conditional: bool,
    /// Names of the middleware around this link only
    /// ([`Step::around`](crate::Step::around)), outermost first.
    pub around: Vec<String>,
    /// Name of the link's own error handler, if any.
    pub on_error: Option<String>,
}

/// What a link is, structurally.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LinkKind {
    /// A plain link.
    Link,
    /// Branches run concurrently and merged.
    Parallel {
        /// The branches in merge order.
        branches: Vec<LinkDescription>,
    },
    /// A nested chain.
    Chain(Box<ChainDescription>),
}

impl ChainDescription {
    /// The chain as a Mermaid flowchart (`flowchart TD`): links in order,
    /// diamonds for conditions, fork and join for parallel branches,
    /// subgraphs for nested chains and dotted edges for error routes.
    ///
    /// ```
    /// use chain_core::{Chain, Context};
    ///
    /// async fn validate(ctx: Context) -> chain_core::Result<Context> { Ok(ctx) }
    /// async fn charge(ctx: Context) -> chain_core::Result<Context> { Ok(ctx) }
    ///
    /// let chart = Chain::named("checkout").link(validate).link(charge).to_mermaid();
    /// assert!(chart.starts_with("flowchart TD"));
    /// assert!(chart.contains(r#"n0["validate"]"#));
    /// assert!(chart.contains("n0 --> n1"));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let _ = writeln!(out, "    start([\"{}\"])", escape(&self.name));
        let mut renderer = Renderer { out };
        let exits = renderer.links(
            "n",
            &self.links,
            self.catch.as_deref(),
            vec![Exit::plain("start")],
        );
        renderer.node("done", "([\"done\"])");
        renderer.connect(&exits, "done");
        renderer.out
    }
}

struct Exit {
    from: String,
    label: Option<&'static str>,
}

impl Exit {
    fn plain(from: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            label: None,
        }
    }
}

struct Renderer {
    out: String,
}

impl Renderer {
    fn node(&mut self, id: &str, shape: &str) {
        let _ = writeln!(self.out, "    {id}{shape}");
    }

    fn connect(&mut self, exits: &[Exit], to: &str) {
        for exit in exits {
            match exit.label {
                Some(label) => {
                    let _ = writeln!(self.out, "    {} -- {label} --> {to}", exit.from);
                }
                None => {
                    let _ = writeln!(self.out, "    {} --> {to}", exit.from);
                }
            }
        }
    }

    fn links(
        &mut self,
        prefix: &str,
        links: &[LinkDescription],
        catch: Option<&str>,
        mut exits: Vec<Exit>,
    ) -> Vec<Exit> {
        for link in links {
            let id = format!("{prefix}{}", link.index);
            let mut skipped = None;
            if link.conditional {
                let condition = format!("{id}_when");
                self.node(&condition, "{\"when\"}");
                self.connect(&exits, &condition);
                exits = vec![Exit {
                    from: condition.clone(),
                    label: Some("yes"),
                }];
                skipped = Some(Exit {
                    from: condition,
                    label: Some("no"),
                });
            }
            let mut next = self.link(&id, link, exits);
            if let Some(handler) = link.on_error.as_deref().or(catch) {
                let handler_id = format!("{id}_err");
                self.node(&handler_id, &format!("[/\"{}\"/]", escape(handler)));
                let _ = writeln!(self.out, "    {id} -. error .-> {handler_id}");
                next.push(Exit::plain(handler_id));
            }
            next.extend(skipped);
            exits = next;
        }
        exits
    }

    fn link(&mut self, id: &str, link: &LinkDescription, incoming: Vec<Exit>) -> Vec<Exit> {
        let mut label = escape(&link.name);
        if !link.around.is_empty() {
            let _ = write!(label, "<br/>⟨{}⟩", escape(&link.around.join(", ")));
        }
        match &link.kind {
            LinkKind::Link => {
                self.node(id, &format!("[\"{label}\"]"));
                self.connect(&incoming, id);
                vec![Exit::plain(id)]
            }
            LinkKind::Parallel { branches } => {
                self.node(id, &format!("{{{{\"{label}\"}}}}"));
                self.connect(&incoming, id);
                let join = format!("{id}_join");
                let mut branch_exits = Vec::new();
                for branch in branches {
                    let branch_id = format!("{id}_b{}", branch.index);
                    branch_exits.extend(self.link(&branch_id, branch, vec![Exit::plain(id)]));
                }
                self.node(&join, "((\"join\"))");
                self.connect(&branch_exits, &join);
                vec![Exit::plain(join)]
            }
            LinkKind::Chain(chain) => {
                let _ = writeln!(self.out, "    subgraph {id} [\"{label}\"]");
                let inner_start = format!("{id}_start");
                self.node(&inner_start, &format!("([\"{}\"])", escape(&chain.name)));
                let exits = self.links(
                    &format!("{id}_"),
                    &chain.links,
                    chain.catch.as_deref(),
                    vec![Exit::plain(inner_start.clone())],
                );
                let _ = writeln!(self.out, "    end");
                self.connect(&incoming, &inner_start);
                exits
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
}
