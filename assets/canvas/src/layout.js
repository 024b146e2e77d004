// Auto-layout: layered, left to right (dagre, loaded the first time it is used).

const GAP = { node: 48, rank: 96 }
const BOX_PADDING = { left: 32, top: 72, right: 32, bottom: 32 }

/**
 * New positions for `nodes` (Vue Flow graph nodes) laid out left to right along `edges`:
 * `{positions: Map(id → {x, y}), sizes: Map(loop id → {width, height})}`. Each loop's body is
 * laid out inside its box first, and the box resized to fit it; sticky notes stay where they are.
 */
export async function layeredLayout(nodes, edges) {
  const { graphlib, layout } = await import('@dagrejs/dagre')
  const positions = new Map()
  const sizes = new Map()
  const size = (node) => sizes.get(node.id) || {
    width: node.dimensions?.width || 200,
    height: node.dimensions?.height || 80,
  }

  const place = (members, origin) => {
    if (!members.length) return { width: 0, height: 0 }
    const graph = new graphlib.Graph()
    graph.setGraph({ rankdir: 'LR', nodesep: GAP.node, ranksep: GAP.rank, marginx: 0, marginy: 0 })
    graph.setDefaultEdgeLabel(() => ({}))
    const ids = new Set(members.map((n) => n.id))
    for (const node of members) graph.setNode(node.id, size(node))
    for (const edge of edges) {
      if (ids.has(edge.source) && ids.has(edge.target) && edge.source !== edge.target) {
        graph.setEdge(edge.source, edge.target)
      }
    }
    layout(graph)
    let width = 0
    let height = 0
    for (const node of members) {
      const { x, y, width: w, height: h } = graph.node(node.id)
      positions.set(node.id, { x: Math.round(origin.x + x - w / 2), y: Math.round(origin.y + y - h / 2) })
      width = Math.max(width, x + w / 2)
      height = Math.max(height, y + h / 2)
    }
    return { width, height }
  }

  const steps = nodes.filter((n) => n.type !== 'note')
  for (const box of steps.filter((n) => n.type === 'loop')) {
    const body = steps.filter((n) => n.parentNode === box.id)
    if (!body.length) continue
    const used = place(body, { x: BOX_PADDING.left, y: BOX_PADDING.top })
    sizes.set(box.id, {
      width: Math.max(Math.round(used.width + BOX_PADDING.left + BOX_PADDING.right), 320),
      height: Math.max(Math.round(used.height + BOX_PADDING.top + BOX_PADDING.bottom), 200),
    })
  }
  const top = steps.filter((n) => !n.parentNode)
  if (top.length) {
    // keep the flow where it was: its top-left corner stays put
    place(top, { x: Math.min(...top.map((n) => n.position.x)), y: Math.min(...top.map((n) => n.position.y)) })
  }
  return { positions, sizes }
}
