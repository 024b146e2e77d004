// Connection handles without a component each: a step draws its ports as plain elements that
// carry Vue Flow's handle classes and data attributes, and starts connections through one
// `useHandle` per step. (Vue Flow's <Handle> component per port costs more than the rest of
// the step when a flow has hundreds of steps.)
import { ref } from 'vue'
import { useHandle, useVueFlow } from '@vue-flow/core'
import { useCanvas } from './context.js'

/** For the step `nodeId`: `attrs(port, type, position)` for a handle element, and its mousedown. */
export function useHandles(nodeId) {
  const canvas = useCanvas()
  const { id: flowId } = useVueFlow()
  const handleId = ref(null)
  const type = ref('source')
  const { handlePointerDown } = useHandle({ nodeId, handleId, type })

  function attrs(port, handleType, position) {
    const editable = !canvas.readonly.value
    return {
      class: [
        'vue-flow__handle',
        `vue-flow__handle-${position}`,
        'nodrag',
        'nopan',
        handleType,
        editable && 'connectable connectablestart connectableend connectionindicator',
      ],
      'data-id': `${flowId}-${nodeId}-${port}-${handleType}`,
      'data-handleid': port,
      'data-nodeid': nodeId,
      'data-handlepos': position,
      onMousedown: (event) => start(event, port, handleType),
      onTouchstartPassive: (event) => start(event, port, handleType),
    }
  }

  function start(event, port, handleType) {
    if (canvas.readonly.value || (event.button !== undefined && event.button !== 0)) return
    handleId.value = port
    type.value = handleType
    handlePointerDown(event)
  }

  return { attrs }
}
