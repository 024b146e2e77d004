// The flow document (schema flowloom/1) and what the canvas draws of it.
//
// The document is the source of truth: the canvas draws nodes, edges and sticky notes from it
// and builds it back from what is drawn, keeping every key it does not draw (settings, vars,
// config, tool, keys it has never heard of) exactly as it was given.

import { markRaw } from 'vue'

export const NOTE_PREFIX = 'note:'
export const NOTES_KEY = 'x_notes'
export const LOOP_SIZE = { width: 400, height: 220 }
export const NOTE_SIZE = { width: 220, height: 140 }
export const NODE_WIDTH = 200
// a step's usual height, for sizing a loop box around steps not yet drawn
const NODE_HEIGHT = 110

const CATEGORY_ORDER = ['Triggers', 'AI', 'Logic', 'Data', 'HTTP', 'Flow', 'Human']

/** A deep copy of plain JSON data (also of Vue's reactive proxies of it). */
export function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value))
}

/** Node type descriptions (NodeType.describe()) by type name. */
export function indexTypes(nodeTypes) {
  const index = new Map()
  for (const type of nodeTypes || []) index.set(type.type, type)
  return index
}

/** Palette groups: [{category, types}] in the order a person expects, triggers first. */
export function groupTypes(nodeTypes) {
  const groups = new Map()
  for (const type of nodeTypes || []) {
    const category = type.category || 'Other'
    if (!groups.has(category)) groups.set(category, [])
    groups.get(category).push(type)
  }
  const rank = (category) => {
    const at = CATEGORY_ORDER.indexOf(category)
    return at === -1 ? CATEGORY_ORDER.length : at
  }
  return [...groups.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([category, types]) => ({ category, types }))
}

/** Whether the type holds a body of steps (a loop): drawn as a box. */
export function hasBody(type) {
  if (!type) return false
  return type.has_body ?? type.type === 'logic.loop'
}

/** Every output port the node may send on, given its config (and `error` when routed). */
export function outputPorts(node, type) {
  const config = node.config || {}
  let ports = [...(type?.outputs || ['out'])]
  if (Array.isArray(config.cases)) {
    ports = config.cases.map((c) => c?.port).filter(Boolean)
    ports.push(typeof config.default === 'string' && config.default ? config.default : 'default')
  } else if (Array.isArray(config.routes)) {
    ports = config.routes.map((r) => r?.port).filter(Boolean)
    if (typeof config.default === 'string' && config.default && !ports.includes(config.default)) {
      ports.push(config.default)
    }
  }
  ports = [...new Set(ports)]
  if (node.settings?.on_error === 'route' && !ports.includes('error')) ports.push('error')
  return ports
}

function text(value) {
  if (value === null || value === undefined) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value)
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? '' : 's'}`
}

const SUMMARIES = {
  'trigger.manual': () => 'When you press Run',
  'trigger.webhook': (c) => (c.response === 'async' ? 'Answers at once (async)' : 'Answers when done'),
  'trigger.schedule': (c) =>
    c.cron ? `cron ${c.cron}` : c.every_s ? `every ${c.every_s} s` : 'No timetable yet',
  'ai.agent': (c) => c.agent || c.model,
  'ai.router': (c) =>
    c.model || (Array.isArray(c.routes) ? plural(c.routes.length, 'path') : ''),
  'logic.condition': (c) => c.expression,
  'logic.switch': (c) => (Array.isArray(c.cases) ? plural(c.cases.length, 'path') : ''),
  'logic.merge': (c) => (c.mode === 'first' ? 'Takes the first to arrive' : 'Waits for all'),
  'logic.loop': (c) => `For each of ${text(c.items)}`,
  'http.request': (c) => [c.method || 'GET', c.url].filter(Boolean).join(' '),
  'data.set': (c) => (c.values && typeof c.values === 'object' ? Object.keys(c.values).join(', ') : ''),
  'data.template': (c) => c.template,
  'flow.delay': (c) => (c.seconds !== undefined ? `${c.seconds} s` : ''),
  'flow.respond': (c) => (c.status ? `Status ${c.status}` : ''),
  'flow.subflow': (c) => (typeof c.flow === 'string' ? c.flow : c.flow?.name),
  'human.approval': (c) => c.message,
}

/** One line that says what the node is set to do: the condition, the URL, the model. */
export function summarize(node) {
  const config = node.config || {}
  const known = SUMMARIES[node.type]
  let line = known ? known(config) : ''
  if (!line && !known) {
    const first = Object.values(config).find((v) => typeof v === 'string' && v.trim())
    line = first || ''
  }
  line = text(line).replace(/\s+/g, ' ').trim()
  return line.length > 80 ? `${line.slice(0, 79)}…` : line
}

/** A new node's config: the schema's defaults, and empty values for required text and lists. */
export function defaultConfig(schema) {
  const config = {}
  const properties = schema?.properties || {}
  const required = new Set(schema?.required || [])
  for (const [key, property] of Object.entries(properties)) {
    if ('default' in property) {
      if (property.default !== null) config[key] = clone(property.default)
    } else if (required.has(key)) {
      if (property.type === 'string') config[key] = ''
      else if (property.type === 'array') config[key] = []
      else if (property.type === 'object') config[key] = {}
    }
  }
  return config
}

/** `base`, or `base_2`, `base_3`… whichever is not taken. */
export function uniqueId(base, taken) {
  const clean = String(base).replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'step'
  if (!taken.has(clean)) return clean
  for (let n = 2; ; n++) if (!taken.has(`${clean}_${n}`)) return `${clean}_${n}`
}

/** `title`, or `title 2`, `title 3`… whichever no other node is called. */
export function uniqueName(title, taken) {
  if (!taken.has(title)) return title
  const stem = title.replace(/ \d+$/, '')
  for (let n = 2; ; n++) if (!taken.has(`${stem} ${n}`)) return `${stem} ${n}`
}

/** A new node of `type` whose id and name no node of `document` has. */
export function newNode(type, document, position) {
  const nodes = document.nodes || []
  const kind = type.type.split('.').pop()
  return {
    id: uniqueId(kind, new Set(nodes.map((n) => n.id))),
    type: type.type,
    name: uniqueName(type.title || kind, new Set(nodes.map((n) => n.name))),
    position: roundPosition(position),
    config: defaultConfig(type.config_schema),
  }
}

export function roundPosition(position) {
  return { x: Math.round(position?.x || 0), y: Math.round(position?.y || 0) }
}

export function edgePorts(edge) {
  return { source: edge.source_port || 'out', target: edge.target_port || 'in' }
}

function edgeId(edge, taken) {
  const ports = edgePorts(edge)
  const base = `${edge.source}:${ports.source}->${edge.target}:${ports.target}`
  let id = base
  for (let n = 2; taken.has(id); n++) id = `${base}#${n}`
  taken.add(id)
  return id
}

/** The CSS class of a connection leaving `port`: error and tool connections look different. */
export function edgeClass(port) {
  return port === 'error' ? 'edge-error' : port === 'tools' ? 'edge-tools' : ''
}

/** A loop box's size when the document gives none: room for its body, or the default. */
function boxSize(loop, nodes) {
  const body = nodes.filter((n) => n.parent === loop.id)
  if (!body.length) return LOOP_SIZE
  const right = Math.max(...body.map((n) => (n.position?.x || 0) + NODE_WIDTH))
  const bottom = Math.max(...body.map((n) => (n.position?.y || 0) + NODE_HEIGHT))
  return { width: Math.max(260, right + 24), height: Math.max(160, bottom + 24) }
}

/** The Vue Flow node drawing `node` of `nodes` (its document's), inside `parent` if given. */
export function toFlowNode(node, types, nodes, parent) {
  const box = hasBody(types.get(node.type))
  const size = box ? { ...boxSize(node, nodes), ...(node.size || {}) } : null
  return {
    id: node.id,
    type: box ? 'loop' : 'step',
    position: roundPosition(node.position),
    parentNode: parent,
    extent: undefined,
    class: '',
    style: size ? { width: `${size.width}px`, height: `${size.height}px` } : {},
    zIndex: box ? -1 : 0,
    // a `parent` that is no loop of this flow is kept as it is, not drawn; the node itself is
    // replaced on every change, never changed in place, so Vue need not watch inside it
    data: { node: markRaw(node), strayParent: Boolean(node.parent) && !parent },
  }
}

/** Vue Flow nodes and edges for a document (parents before their children). */
export function toFlow(document, types) {
  const nodes = Array.isArray(document.nodes) ? document.nodes : []
  const boxes = nodes.filter((n) => hasBody(types.get(n.type)))
  const boxIds = new Set(boxes.map((n) => n.id))
  const others = nodes.filter((n) => !hasBody(types.get(n.type)))
  const flowNodes = [
    ...boxes.map((node) => toFlowNode(node, types, nodes, undefined)),
    ...others.map((node) => toFlowNode(node, types, nodes, boxIds.has(node.parent) ? node.parent : undefined)),
  ]
  for (const note of Array.isArray(document[NOTES_KEY]) ? document[NOTES_KEY] : []) {
    const size = { ...NOTE_SIZE, ...(note.size || {}) }
    flowNodes.unshift({
      id: NOTE_PREFIX + note.id,
      type: 'note',
      position: roundPosition(note.position),
      parentNode: undefined,
      extent: undefined,
      class: '',
      style: { width: `${size.width}px`, height: `${size.height}px` },
      zIndex: -2,
      data: { note: markRaw(note) },
    })
  }
  const taken = new Set()
  const flowEdges = (Array.isArray(document.edges) ? document.edges : []).map((edge) => {
    const ports = edgePorts(edge)
    return {
      id: edgeId(edge, taken),
      type: 'flow',
      source: edge.source,
      target: edge.target,
      sourceHandle: ports.source,
      targetHandle: ports.target,
      class: edgeClass(ports.source),
      data: { edge },
    }
  })
  return { nodes: flowNodes, edges: flowEdges }
}

function sizeOf(flowNode, fallback) {
  const width = Math.round(flowNode.dimensions?.width || parseFloat(flowNode.style?.width) || fallback.width)
  const height = Math.round(flowNode.dimensions?.height || parseFloat(flowNode.style?.height) || fallback.height)
  return { width, height }
}

/** The document drawn by Vue Flow's `flowNodes` and `flowEdges`, on top of `base`'s other keys. */
export function toDocument(base, flowNodes, flowEdges) {
  const nodes = []
  const notes = []
  for (const flowNode of flowNodes) {
    if (flowNode.type === 'note') {
      const note = { ...flowNode.data.note, position: roundPosition(flowNode.position) }
      note.size = sizeOf(flowNode, NOTE_SIZE)
      notes.push(note)
      continue
    }
    const node = { ...flowNode.data.node, position: roundPosition(flowNode.position) }
    if (flowNode.parentNode) node.parent = flowNode.parentNode
    else if (!flowNode.data.strayParent) delete node.parent
    if (flowNode.type === 'loop') node.size = sizeOf(flowNode, LOOP_SIZE)
    nodes.push(node)
  }
  const document = { ...base, nodes, edges: flowEdges.map((e) => ({ ...e.data.edge })) }
  if (notes.length || NOTES_KEY in base) document[NOTES_KEY] = notes
  return document
}

/**
 * The nodes `ids` of `document` as a document of their own, for the clipboard: edges between
 * them kept, a child copied without its loop placed where it was drawn.
 */
export function fragment(document, ids, absolute) {
  const chosen = new Set(ids)
  // a loop takes its body along
  for (const node of document.nodes || []) if (node.parent && chosen.has(node.parent)) chosen.add(node.id)
  const nodes = (document.nodes || [])
    .filter((n) => chosen.has(n.id))
    .map((n) => {
      const copy = clone(n)
      if (copy.parent && !chosen.has(copy.parent)) {
        delete copy.parent
        copy.position = roundPosition(absolute(n.id) || copy.position)
      }
      return copy
    })
  const edges = (document.edges || [])
    .filter((e) => chosen.has(e.source) && chosen.has(e.target))
    .map((e) => clone(e))
  const notes = (document[NOTES_KEY] || []).filter((n) => chosen.has(NOTE_PREFIX + n.id))
  const piece = { schema: document.schema || 'flowloom/1', nodes, edges }
  if (notes.length) piece[NOTES_KEY] = clone(notes)
  return piece
}

/** Whether `value` is a flow document (or a piece of one) that can be pasted. */
export function isFragment(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    Array.isArray(value.nodes) &&
    (value.nodes.length > 0 || (Array.isArray(value[NOTES_KEY]) && value[NOTES_KEY].length > 0))
  )
}

/**
 * `document` with the nodes, edges and notes of `piece` added under fresh ids and names,
 * moved so that their top-left corner sits at `at`. Returns [document, ids of what was added].
 */
export function pasteInto(document, piece, at) {
  const nodes = [...(document.nodes || [])]
  const takenIds = new Set(nodes.map((n) => n.id))
  const takenNames = new Set(nodes.map((n) => n.name))
  const renamed = new Map()
  const topLevel = piece.nodes.filter((n) => !n.parent || !piece.nodes.some((p) => p.id === n.parent))
  const notes = piece[NOTES_KEY] || []
  const corners = [...topLevel, ...notes].map((n) => n.position || { x: 0, y: 0 })
  const left = Math.min(...corners.map((p) => p.x || 0))
  const top = Math.min(...corners.map((p) => p.y || 0))
  for (const node of piece.nodes) {
    const id = uniqueId(node.id, takenIds)
    takenIds.add(id)
    renamed.set(node.id, id)
  }
  const added = []
  for (const node of piece.nodes) {
    const copy = clone(node)
    copy.id = renamed.get(node.id)
    if (copy.name) {
      copy.name = uniqueName(copy.name, takenNames)
      takenNames.add(copy.name)
    }
    if (copy.parent && renamed.has(copy.parent)) copy.parent = renamed.get(copy.parent)
    else {
      delete copy.parent
      copy.position = roundPosition({
        x: (copy.position?.x || 0) - left + at.x,
        y: (copy.position?.y || 0) - top + at.y,
      })
    }
    nodes.push(copy)
    added.push(copy.id)
  }
  const edges = [...(document.edges || [])]
  for (const edge of piece.edges || []) {
    if (!renamed.has(edge.source) || !renamed.has(edge.target)) continue
    edges.push({ ...clone(edge), source: renamed.get(edge.source), target: renamed.get(edge.target) })
  }
  const result = { ...document, nodes, edges }
  if (notes.length) {
    const existing = [...(document[NOTES_KEY] || [])]
    const noteIds = new Set(existing.map((n) => n.id))
    for (const note of notes) {
      const id = uniqueId(note.id || 'note', noteIds)
      noteIds.add(id)
      existing.push({
        ...clone(note),
        id,
        position: roundPosition({ x: note.position.x - left + at.x, y: note.position.y - top + at.y }),
      })
      added.push(NOTE_PREFIX + id)
    }
    result[NOTES_KEY] = existing
  }
  return [result, added]
}
