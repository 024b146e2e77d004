// Undo and redo: a list of document snapshots (JSON text) and where we are in it.

export class History {
  constructor(limit = 200) {
    this.limit = limit
    this.snapshots = []
    this.at = -1
  }

  /** Start over from `document` (a new flow was loaded). */
  reset(document) {
    this.snapshots = [JSON.stringify(document)]
    this.at = 0
  }

  /** Record `document` after an edit; false when nothing changed since the last snapshot. */
  push(document) {
    const snapshot = JSON.stringify(document)
    if (snapshot === this.snapshots[this.at]) return false
    this.snapshots = this.snapshots.slice(0, this.at + 1)
    this.snapshots.push(snapshot)
    if (this.snapshots.length > this.limit) this.snapshots.shift()
    this.at = this.snapshots.length - 1
    return true
  }

  /** Change every snapshot with `change(document)`: edits that undo must not take back. */
  rewrite(change) {
    this.snapshots = this.snapshots.map((snapshot) => {
      const document = JSON.parse(snapshot)
      change(document)
      return JSON.stringify(document)
    })
  }

  get canUndo() {
    return this.at > 0
  }

  get canRedo() {
    return this.at < this.snapshots.length - 1
  }

  /** The document before the last edit, or null. */
  undo() {
    if (!this.canUndo) return null
    this.at -= 1
    return JSON.parse(this.snapshots[this.at])
  }

  /** The document after the last undone edit, or null. */
  redo() {
    if (!this.canRedo) return null
    this.at += 1
    return JSON.parse(this.snapshots[this.at])
  }
}
