// The canvas bundle: FlowLoom's flow canvas as a Vue component, with its styles.
// NiceGUI serves this file as the ES module "flowloom-canvas"; `vue` is NiceGUI's own.
import coreCss from '@vue-flow/core/dist/style.css?inline'
import themeCss from '@vue-flow/core/dist/theme-default.css?inline'
import controlsCss from '@vue-flow/controls/dist/style.css?inline'
// FlowMiniMap draws its own minimap, with the classes (and so the styles) of Vue Flow's
import minimapCss from '@vue-flow/minimap/dist/style.css?inline'
import resizerCss from '@vue-flow/node-resizer/dist/style.css?inline'
import canvasCss from './canvas.css?inline'
import FlowCanvas from './FlowCanvas.vue'

const STYLE_ID = 'flowloom-canvas-style'

if (!document.getElementById(STYLE_ID)) {
  const style = document.createElement('style')
  style.id = STYLE_ID
  style.textContent = [coreCss, themeCss, controlsCss, minimapCss, resizerCss, canvasCss].join('\n')
  document.head.append(style)
}

export { FlowCanvas }
export default FlowCanvas
