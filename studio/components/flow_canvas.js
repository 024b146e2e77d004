// NiceGUI's side of the canvas: the component is the Vue Flow bundle built from
// assets/canvas (served as the ES module "flowloom-canvas"; see canvas.py).
import { FlowCanvas } from "flowloom-canvas";

export default FlowCanvas;
